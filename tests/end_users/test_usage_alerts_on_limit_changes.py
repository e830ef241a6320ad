"""Usage alerts raised by a change of limit, over real gRPC on both
databases: a downgrade (or any change of a plan's or a tenant's limit)
that puts usage at or past 80 % or 100 % raises those alerts once, as a
write crossing them would, and a later write does not raise them again."""

from typing import Any

import grpc
from billing.v1 import (
    notification_pb2,
    notification_pb2_grpc,
    plan_pb2,
    subscription_pb2,
    usage_pb2,
)

from ..conftest import Client
from ..rpc_errors import refused


async def _plan(client: Client, key: str, limit: int) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key=key, name=key, quotas={"seo": limit}),
        metadata=client.auth,
    )


async def _subscribe(client: Client, user: str, plan: str) -> None:
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(user_id=user, plan_key=plan), metadata=client.auth
    )


async def _consume(client: Client, user: str, times: int) -> None:
    for _ in range(times):
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(user_id=user, primitive="seo"), metadata=client.auth
        )


async def _alerts(client: Client) -> list[tuple[str, int]]:
    """(user, threshold) of every alert, oldest first."""
    stub = notification_pb2_grpc.UsageAlertServiceStub(client.channel)
    listed: Any = await stub.ListUsageAlerts(
        notification_pb2.ListUsageAlertsRequest(), metadata=client.auth
    )
    return [(a.user_id, a.threshold_percent) for a in reversed(listed.alerts)]


async def test_a_plan_downgrade_raises_the_thresholds_it_puts_usage_past_once(
    client: Client,
) -> None:
    await _plan(client, "pro", 10)
    await _subscribe(client, "u1", "pro")
    await _subscribe(client, "u2", "pro")
    await _consume(client, "u1", 7)
    await _consume(client, "u2", 2)
    assert await _alerts(client) == []

    await _plan(client, "pro", 5)  # u1 at 7/5, u2 at 2/5

    assert await _alerts(client) == [("u1", 80), ("u1", 100)]
    failure = await refused(_consume(client, "u1", 1))
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Back up to 10, then a write crossing 80 % again: raised already.
    await _plan(client, "pro", 10)
    await _consume(client, "u1", 1)
    await _plan(client, "pro", 10)  # no change of limit, nothing raised
    assert await _alerts(client) == [("u1", 80), ("u1", 100)]


async def test_a_tenants_change_of_plan_raises_what_its_usage_reached(client: Client) -> None:
    await _plan(client, "big", 20)
    await _plan(client, "small", 11)
    await _subscribe(client, "u1", "big")
    await _consume(client, "u1", 9)

    await _subscribe(client, "u1", "small")  # 9/11: past 80 % only

    assert await _alerts(client) == [("u1", 80)]
    await _consume(client, "u1", 1)  # 10/11: nothing crossed
    assert await _alerts(client) == [("u1", 80)]
    await _consume(client, "u1", 1)  # 11/11: the write crosses 100 %
    assert await _alerts(client) == [("u1", 80), ("u1", 100)]
