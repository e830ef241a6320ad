"""`billing-service serve` with several server processes on one address, and
its background jobs in a process of their own."""

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from billing_service.clock import FixedClock
from billing_service.config import Settings, server_processes
from billing_service.grpc_core import GRPC_EXPERIMENTS

from ..cli_subprocess import BILLING_SERVICE, free_port, serve, service_env
from ..conftest import Client, make_client
from ..metering.usage_helpers import consume, subscribe, usage_of


@pytest.mark.parametrize(("workers", "cores", "expected"), [("2", 4, 2), ("0", 4, 4), ("0", 1, 1)])
def test_workers_zero_means_one_per_core(
    workers: str, cores: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_WORKERS", workers)
    assert server_processes(Settings(), cores=cores) == expected


async def test_two_workers_share_the_address_count_exactly_and_stop_on_sigterm(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(datetime.now(UTC))  # the workers run on the system clock
    await subscribe(client, "hot", {"seo": 30})
    env = service_env(database_url, auth_cache_seconds="0", workers="2")
    env.pop("GRPC_EXPERIMENTS", None)
    async with serve(env, tmp_path) as service:
        # Each worker logs, as a single process does; serving starts with the first.
        await _until(lambda: _started(service.log()))
        # Two servers and the background jobs' process, on the gRPC core
        # settings the command sets (grpc_core.py).
        children = _children(service.process.pid)
        assert len(children) == 3
        assert _jobs_pid(service.log()) in children
        assert {_environ(pid).get("GRPC_EXPERIMENTS") for pid in children} == {GRPC_EXPERIMENTS}
        # Separate channels: separate connections, which the kernel spreads.
        channels = [grpc.aio.insecure_channel(service.target) for _ in range(4)]
        try:
            clients = [make_client(channel, client.key) for channel in channels]
            results = await asyncio.gather(
                *(consume(clients[i % 4], "hot") for i in range(60)), return_exceptions=True
            )
        finally:
            for channel in channels:
                await channel.close()
        service.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(service.process.wait(), 60) == 0
        assert service.log().count("shutting down: NOT_SERVING") == 2
        assert "background jobs stopping" in service.log()
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(admitted) == 30
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert await usage_of(client, "hot") == {"seo": 30}


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["server", "jobs"])
async def test_a_process_killed_under_serve_stops_the_others_and_it_exits_with_failure(
    client: Client, database_url: str, tmp_path: Path, killed: str
) -> None:
    # (`client` is here for its migrated database.)
    env = service_env(database_url, workers="2")
    async with serve(env, tmp_path) as service:
        await _until(lambda: _started(service.log()))
        jobs = _jobs_pid(service.log())
        servers = [pid for pid in _children(service.process.pid) if pid != jobs]
        os.kill(jobs if killed == "jobs" else servers[0], signal.SIGKILL)
        assert await asyncio.wait_for(service.process.wait(), 60) == 128 + signal.SIGKILL
        log = service.log()
    assert "killed by signal 9: stopping the others" in log
    assert log.count("shutting down: NOT_SERVING") == (2 if killed == "jobs" else 1)
    assert ("background jobs stopping" in log) == (killed == "server")


@pytest.mark.slow
async def test_serve_killed_outright_leaves_no_process_behind(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    """A SIGKILL of `serve` itself reaches none of its processes: each notices
    it is gone and stops (a server left behind keeps serving on the port)."""
    # (`client` is here for its migrated database.)
    env = service_env(database_url, workers="2", shutdown_grace_seconds="0")
    async with serve(env, tmp_path) as service:
        await _until(lambda: _started(service.log()))
        children = _children(service.process.pid)
        assert len(children) == 3
        os.kill(service.process.pid, signal.SIGKILL)
        await service.process.wait()
        await _until(lambda: not any(map(_alive, children)), within_seconds=20)
        log = service.log()
    assert log.count("is gone: stopping this server") == 2
    assert log.count("is gone: stopping the background jobs") == 1


@pytest.mark.parametrize("after_seconds", [0.5, 1.5, 3.0])
async def test_a_sigterm_while_the_processes_start_is_a_clean_stop(
    client: Client, database_url: str, tmp_path: Path, after_seconds: float
) -> None:
    """Processes still importing or opening the database when `serve` is
    stopped die of the signal it forwards: the stop asked for, not a failure
    (128 + 15). `serve` itself, stopped before it set up its handling, dies
    of the signal as any program does; either way nothing is left running."""
    # (`client` is here for its migrated database.)
    env = service_env(database_url, grpc_addr=f"127.0.0.1:{free_port()}", http_addr="")
    with (tmp_path / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            BILLING_SERVICE, "serve", env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        await asyncio.sleep(after_seconds)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 60)
        await _until(lambda: not _group_alive(process.pid), within_seconds=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert code in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()


async def _until(condition: Callable[[], bool], within_seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _children(pid: int) -> list[int]:
    """The processes `serve` spawned (not multiprocessing's resource tracker)."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    return [child for child in children if b"spawn_main" in _cmdline(child)]


def _started(log: str) -> bool:
    """Both servers listen and the jobs process runs (it may come last)."""
    return log.count("gRPC listening on") == 2 and "background jobs running in process" in log


def _alive(pid: int) -> bool:
    """Whether `pid` runs (an exited process nobody reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _jobs_pid(log: str) -> int:
    found = re.search(r"background jobs running in process (\d+)", log)
    assert found is not None, log
    return int(found.group(1))


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as raw:
        return raw.read()


def _environ(pid: int) -> dict[str, str]:
    """The environment a process started with."""
    with open(f"/proc/{pid}/environ", "rb") as raw:
        entries = raw.read().decode().split("\0")
    return dict(entry.partition("=")[::2] for entry in entries if entry)
