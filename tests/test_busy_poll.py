"""Busy polling (BILLING_BUSY_POLL_US): the event loop polls instead of
sleeping for a moment after each call, while calls come within that moment;
it stops when the moment is over, and backs off when its polling keeps
another thread from a core."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from billing.v1 import usage_pb2

from billing_service.api.busy_poll import BusyPoll
from billing_service.app import App
from billing_service.config import Settings

from .conftest import Client
from .usage_helpers import check, consume, subscribe


async def _thread_cpu_while(seconds: float) -> float:
    """CPU seconds this (the event loop's) thread spends while the loop waits `seconds`."""
    before = time.thread_time()
    await asyncio.sleep(seconds)
    return time.thread_time() - before


def _calls_come_back_to_back(poll: BusyPoll) -> None:
    """Calls that come as soon as the last is answered, as from a caller in a loop."""
    for _ in range(32):
        poll.call_started()
        poll.call_ended()


async def test_the_loop_polls_for_the_window_then_sleeps_again() -> None:
    idle = await _thread_cpu_while(0.05)
    poll = BusyPoll(0.05)
    _calls_come_back_to_back(poll)
    polling = await _thread_cpu_while(0.05)
    after = await _thread_cpu_while(0.05)
    # Polling keeps the thread on its core for the window (unless this machine
    # is so busy that it backed off, which is what it should then do).
    assert polling > 0.02 or poll.backoffs > 0
    assert after < 0.01 and idle < 0.01
    poll.close()


async def test_each_call_extends_the_window() -> None:
    poll = BusyPoll(0.02)
    _calls_come_back_to_back(poll)
    started = time.thread_time()
    for _ in range(6):
        poll.call_started()
        poll.call_ended()
        await asyncio.sleep(0.01)
    busy = time.thread_time() - started
    assert busy > 0.03 or poll.backoffs > 0
    assert await _thread_cpu_while(0.05) < 0.03  # the last window ends: 20 ms of it at most
    poll.close()


async def test_calls_that_come_at_their_own_pace_find_no_polling() -> None:
    poll = BusyPoll(0.002)
    _calls_come_back_to_back(poll)
    assert poll.soon_share >= 0.5  # polling pays

    async def calls_10_ms_apart(count: int) -> float:
        """CPU spent on `count` calls, each 10 ms after the last answer."""
        started = time.thread_time()
        for _ in range(count):
            poll.call_started()
            poll.call_ended()
            await asyncio.sleep(0.01)
        return time.thread_time() - started

    await calls_10_ms_apart(15)  # polling 2 ms after each answer catches none of them
    assert poll.soon_share < 0.5
    assert await calls_10_ms_apart(15) < 0.01  # polling after each would have taken 30 ms
    _calls_come_back_to_back(poll)  # the caller speeds up: polling pays again
    assert poll.soon_share >= 0.5
    assert await _thread_cpu_while(0.01) > 0.001 or poll.backoffs > 0
    poll.close()


@contextmanager
def _a_busy_neighbour_on_this_core() -> Iterator[None]:
    """Pin this process to one core, with a process that spins on it too."""
    saved = os.sched_getaffinity(0)
    core = min(saved)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spinner.pid, {core})
        os.sched_setaffinity(0, {core})
        yield
    finally:
        os.sched_setaffinity(0, saved)
        spinner.kill()
        spinner.wait()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
async def test_polling_backs_off_while_another_thread_wants_the_core() -> None:
    poll = BusyPoll(0.5)
    with _a_busy_neighbour_on_this_core():
        _calls_come_back_to_back(poll)
        cpu = await _thread_cpu_while(0.5)
    assert poll.backoffs >= 1
    # It polled for a look or two, not the half second the window asked.
    assert cpu < 0.15
    poll.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings (conftest.py), with busy polling on."""
    return settings.model_copy(update={"busy_poll_us": 300})


async def test_calls_are_answered_exactly_with_busy_polling_on(app: App, client: Client) -> None:
    assert app.settings.busy_poll_us == 300
    await subscribe(client, "user-1", {"seo": 50})
    answers = await asyncio.gather(
        *(consume(client, "user-1", key=f"req-{i % 55}") for i in range(60)),
        return_exceptions=True,
    )
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    recorded = {a.usage_event_id for a in answers if not isinstance(a, BaseException)}
    # 55 keys for 50 units: 50 recorded once each (a repeated key replays its
    # first answer), the rest refused.
    assert {a.code() for a in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(recorded) == 50
    assert (await check(client, "user-1")).standing.used == 50
    with pytest.raises(grpc.aio.AioRpcError) as refused_key:
        await client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(tenant_id="user-1", primitive="seo"),
            metadata=[("authorization", "Bearer bsk_nope")],
        )
    assert refused_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
