"""Usage alerts with two `billing-service serve` processes on one database,
each with its own worker: concurrent consumption on both raises exactly one
alert per threshold, dispatched once; a process killed with deliveries in
hand loses none of them (the other takes them when the lease ends)."""

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from billing.v1 import (
    notification_pb2,
    notification_pb2_grpc,
    plan_pb2,
    subscription_pb2,
    usage_pb2,
)
from cryptography.fernet import Fernet

from billing_service.app import App

from ..cli_subprocess import serve, service_env
from ..conftest import create_operator_key, make_client
from .end_user_helpers import Recorder, create_user, eventually, recorder, sign_in

OWNERS = [f"u-{i}" for i in range(4)]
LIMIT = 20


@pytest.fixture
def hook() -> Iterator[Recorder]:
    yield from recorder(lambda body: (200, {}))


def _slowly(body: bytes) -> tuple[int, Any]:
    time.sleep(0.3)
    return 200, {}


@pytest.fixture
def slow_hook() -> Iterator[Recorder]:
    """A receiver that takes 0.3 s to answer."""
    yield from recorder(_slowly)


# The fake receivers listen on this host's loopback, which webhooks are
# refused unless the service is told to allow it.
LOCAL_RECEIVERS = "127.0.0.0/8"


def _env(database_url: str, **more: str) -> dict[str, str]:
    return service_env(
        database_url,
        secrets_key=Fernet.generate_key().decode(),
        delivery_poll_seconds="0.05",
        password_time_cost="1",
        password_memory_kib="64",
        password_parallelism="1",
        alert_webhook_allow_networks=LOCAL_RECEIVERS,
        **more,
    )


async def _set_up(channel: grpc.aio.Channel, key: str, hook: Recorder) -> None:
    client = make_client(channel, key)
    await notification_pb2_grpc.UsageAlertServiceStub(channel).SetAlertWebhook(
        notification_pb2.SetAlertWebhookRequest(url=hook.url()), metadata=client.auth
    )
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", quotas={"seo": LIMIT, "ai": LIMIT}),
        metadata=client.auth,
    )
    for owner in OWNERS:
        await client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(user_id=owner, plan_key="pro"),
            metadata=client.auth,
        )
        await create_user(client, f"{owner}@example.com", owner)


async def _consume(channels: list[grpc.aio.Channel], key: str) -> None:
    """LIMIT + 5 calls per owner and primitive, spread over the processes."""

    async def one(channel: grpc.aio.Channel, owner: str, primitive: str) -> None:
        try:
            await make_client(channel, key).usage.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(user_id=owner, primitive=primitive),
                metadata=[("authorization", f"Bearer {key}")],
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()

    calls = [
        one(channels[i % len(channels)], owner, primitive)
        for i in range(LIMIT + 5)
        for owner in OWNERS
        for primitive in ("seo", "ai")
    ]
    await asyncio.gather(*calls)


def _alert_ids(hook: Recorder) -> Counter[str]:
    return Counter(json.loads(body)["data"]["id"] for _, body in hook.posts)


async def test_two_processes_raise_and_dispatch_each_alert_once(
    app: App, database_url: str, tmp_path: Path, hook: Recorder
) -> None:
    key = await create_operator_key(app, "acme")
    env = _env(database_url)
    async with (
        serve(env, tmp_path) as first,
        serve(env, tmp_path) as second,
        grpc.aio.insecure_channel(first.target) as one,
        grpc.aio.insecure_channel(second.target) as two,
    ):
        await _set_up(one, key, hook)
        await _consume([one, two], key)
        expected = len(OWNERS) * 2 * 2  # owners x primitives x thresholds

        async def all_posted() -> bool:
            return len(hook.posts) >= expected

        assert await eventually(all_posted, seconds=30)
        await asyncio.sleep(0.5)  # nothing more comes
        assert len(_alert_ids(hook)) == expected
        assert set(_alert_ids(hook).values()) == {1}
        listed = await notification_pb2_grpc.UsageAlertServiceStub(two).ListUsageAlerts(
            notification_pb2.ListUsageAlertsRequest(limit=100),
            metadata=[("authorization", f"Bearer {key}")],
        )
        assert Counter(
            (a.user_id, a.primitive, a.threshold_percent) for a in listed.alerts
        ) == Counter({(o, p, t): 1 for o in OWNERS for p in ("seo", "ai") for t in (80, 100)})
        me = await sign_in(make_client(two, key), "u-0@example.com")
        inbox = await me.notifications.ListNotifications(
            notification_pb2.ListNotificationsRequest(), metadata=me.auth
        )
        assert sorted(
            (n.alert.primitive, n.alert.threshold_percent) for n in inbox.notifications
        ) == [("ai", 80), ("ai", 100), ("seo", 80), ("seo", 100)]


async def test_a_process_killed_with_deliveries_in_hand_loses_none(
    app: App, database_url: str, tmp_path: Path, slow_hook: Recorder
) -> None:
    """The first process takes deliveries and dies before settling them; the
    second posts them when their lease ends."""
    key = await create_operator_key(app, "acme")
    env = _env(database_url, delivery_lease_seconds="1")
    expected = len(OWNERS) * 2 * 2
    async with serve(env, tmp_path) as first:
        async with grpc.aio.insecure_channel(first.target) as channel:
            await _set_up(channel, key, slow_hook)
            await _consume([channel], key)

            async def some_posted() -> bool:
                return len(slow_hook.posts) >= 1

            assert await eventually(some_posted, seconds=30)
        os.killpg(first.process.pid, signal.SIGKILL)  # the server and its jobs process
        await first.process.wait()
    assert len(_alert_ids(slow_hook)) < expected
    async with serve(env, tmp_path):

        async def all_posted() -> bool:
            return len(_alert_ids(slow_hook)) >= expected

        assert await eventually(all_posted, seconds=60)
    # Every alert arrived; one the killed process was posting may come twice
    # (its id lets the receiver drop the second).
    assert len(_alert_ids(slow_hook)) == expected
