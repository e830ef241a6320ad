"""The metering and quota engine through the real gRPC API, on both backends."""

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from billing.v1 import plan_pb2, subscription_pb2, usage_pb2
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.domain.quantities import UNIT
from billing_service.storage.tables import usage_counters, usage_events

from ..conftest import Client
from ..rpc_errors import failure_of
from .usage_helpers import consume, subscribe, timestamp, usage_of, utc


async def test_usage_has_the_documented_shape(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 1000, "aeo": 250})
    for _ in range(3):
        await consume(client, "t1", "seo")
    await consume(client, "t1", "aeo")
    usage = await client.usage.GetUsage(
        usage_pb2.GetUsageRequest(tenant_id="t1"), metadata=client.auth
    )
    assert usage.plan == "pro"
    assert usage.status == subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE
    assert usage.period == plan_pb2.PERIOD_MONTH
    assert dict(usage.quotas) == {"seo": 1000, "aeo": 250}
    assert dict(usage.usage) == {"seo": 3, "aeo": 1}
    assert usage.period_start.ToDatetime(UTC) == utc(2026, 6, 1)
    assert usage.period_end.ToDatetime(UTC) == utc(2026, 7, 1)


async def test_tenant_without_subscription_is_metered_but_never_limited(client: Client) -> None:
    for _ in range(5):
        response = await consume(client, "free-tenant", "seo", quantity=1000)
    assert response.standing.unlimited
    assert response.standing.used == 5000
    assert response.standing.plan_key == ""
    check = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="free-tenant", primitive="seo", quantity=10**6),
        metadata=client.auth,
    )
    assert check.allowed and check.standing.unlimited
    assert await usage_of(client, "free-tenant") == {"seo": 5000}


async def test_over_quota_is_resource_exhausted_with_the_documented_details(
    client: Client,
) -> None:
    await subscribe(client, "t1", {"seo": 3})
    for expected in (1, 2, 3):
        response = await consume(client, "t1")
        assert (response.standing.used, response.standing.limit) == (expected, 3)
        assert response.standing.remaining == 3 - expected
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    details = failure_of(refused.value)
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.message == "Plan quota exceeded for 'seo' (3/3 this period)"
    assert details.reason == "RATE_LIMITED"
    assert details.metadata == {
        "used": "3",
        "limit": "3",
        "primitive": "seo",
        "resets_at": "2026-07-01T00:00:00Z",  # the period's end
    }
    assert details.quota_subjects == ("primitive:seo",)
    assert await usage_of(client, "t1") == {"seo": 3}


async def test_a_quantity_that_would_pass_the_limit_records_nothing(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 10})
    await consume(client, "t1", quantity=8)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1", quantity=3)
    assert failure_of(refused.value).message == "Plan quota exceeded for 'seo' (8/10 this period)"
    assert (await consume(client, "t1", quantity=2)).standing.used == 10


async def test_absent_primitive_is_unlimited_and_zero_quota_refuses(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 0})
    email = await consume(client, "t1", "email", quantity=500)
    assert email.standing.unlimited and email.standing.used == 500
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1", "seo")
    assert failure_of(refused.value).message == "Plan quota exceeded for 'seo' (0/0 this period)"


@pytest.mark.parametrize(
    "status",
    [
        subscription_pb2.SUBSCRIPTION_STATUS_CANCELED,
        subscription_pb2.SUBSCRIPTION_STATUS_UNPAID,
        subscription_pb2.SUBSCRIPTION_STATUS_INCOMPLETE,
        subscription_pb2.SUBSCRIPTION_STATUS_INCOMPLETE_EXPIRED,
        subscription_pb2.SUBSCRIPTION_STATUS_PAUSED,
    ],
)
async def test_inactive_subscription_refuses_metered_calls(
    client: Client, status: subscription_pb2.SubscriptionStatus
) -> None:
    await subscribe(client, "t1", {"seo": 10}, status=status)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    details = failure_of(refused.value)
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "SUBSCRIPTION_INACTIVE"
    check = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo"), metadata=client.auth
    )
    assert not check.allowed
    assert check.reason == usage_pb2.DENIAL_REASON_SUBSCRIPTION_INACTIVE
    assert await usage_of(client, "t1") == {"seo": 0}


@pytest.mark.parametrize(
    "status",
    [
        subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE,
        subscription_pb2.SUBSCRIPTION_STATUS_TRIALING,
        subscription_pb2.SUBSCRIPTION_STATUS_PAST_DUE,
    ],
)
async def test_serving_statuses_enforce_the_plan(
    client: Client, status: subscription_pb2.SubscriptionStatus
) -> None:
    await subscribe(client, "t1", {"seo": 1}, status=status)
    await consume(client, "t1")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_primitive_not_granted_by_the_kit_is_permission_denied(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 10, "email": 10}, kit_primitives=["seo"])
    await consume(client, "t1", "seo")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1", "email")
    details = failure_of(refused.value)
    assert details.code == grpc.StatusCode.PERMISSION_DENIED
    assert details.reason == "PRIMITIVE_NOT_PERMITTED"
    assert details.metadata == {"primitive": "email", "account_kit_id": "pro-kit"}
    check = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="email"), metadata=client.auth
    )
    assert check.reason == usage_pb2.DENIAL_REASON_PRIMITIVE_NOT_PERMITTED


async def test_wildcard_kit_grants_everything_and_unassigned_kit_restricts_nothing(
    client: Client,
) -> None:
    await subscribe(client, "t1", {}, kit_primitives=["*"])
    await consume(client, "t1", "anything")
    await subscribe(client, "t2", {}, plan_key="basic", kit_primitives=[], assign_kit=False)
    await consume(client, "t2", "seo")


async def test_check_quota_is_read_only(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 2})
    for _ in range(5):
        check = await client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo", quantity=2),
            metadata=client.auth,
        )
        assert check.allowed
    assert await usage_of(client, "t1") == {"seo": 0}
    await consume(client, "t1")
    check = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo", quantity=2),
        metadata=client.auth,
    )
    assert not check.allowed
    assert check.reason == usage_pb2.DENIAL_REASON_QUOTA_EXCEEDED
    assert (check.standing.used, check.standing.limit, check.standing.remaining) == (1, 2, 1)
    assert check.standing.plan_key == "pro"


async def test_checks_see_every_change_since_the_last_check(
    client: Client, clock: FixedClock
) -> None:
    # A lone check of a known counter skips the batch machinery; it must still
    # answer as if decided afresh: new usage, new terms, a new period.
    async def check() -> usage_pb2.CheckQuotaResponse:
        response: usage_pb2.CheckQuotaResponse = await client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo", quantity=1),
            metadata=client.auth,
        )
        return response

    await subscribe(client, "t1", {"seo": 3})
    await consume(client, "t1")
    assert (await check()).standing.used == 1
    await consume(client, "t1", quantity=2)
    refused = await check()
    assert (refused.allowed, refused.standing.used) == (False, 3)

    await subscribe(client, "t1", {"seo": 10})
    assert (await check()).allowed
    await subscribe(client, "t1", {"seo": 10}, status=subscription_pb2.SUBSCRIPTION_STATUS_CANCELED)
    inactive = await check()
    assert (inactive.allowed, inactive.reason) == (
        False,
        usage_pb2.DENIAL_REASON_SUBSCRIPTION_INACTIVE,
    )

    await subscribe(client, "t1", {"seo": 3})
    clock.set(utc(2026, 7, 1))
    next_period = await check()
    assert (next_period.allowed, next_period.standing.used) == (True, 0)
    assert next_period.standing.period_start.ToDatetime(UTC) == utc(2026, 7, 1)


async def test_a_check_counts_the_events_when_the_counter_holds_another_period(
    client: Client,
) -> None:
    # Recording usage in an earlier period moves the counter there; a check
    # in the current one then sums the current period's events (refunds out).
    async def check(quantity: int) -> usage_pb2.CheckQuotaResponse:
        response: usage_pb2.CheckQuotaResponse = await client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo", quantity=quantity),
            metadata=client.auth,
        )
        return response

    await subscribe(client, "t1", {"seo": 5})
    first = await consume(client, "t1", quantity=2)
    await consume(client, "t1")
    await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(
            tenant_id="t1", primitive="seo", quantity=4, occurred_at=timestamp(utc(2026, 5, 20))
        ),
        metadata=client.auth,
    )
    allowed, refused = await check(2), await check(3)
    assert (allowed.allowed, allowed.standing.used, allowed.standing.remaining) == (True, 3, 2)
    assert (refused.allowed, refused.reason) == (False, usage_pb2.DENIAL_REASON_QUOTA_EXCEEDED)
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=first.usage_event_id), metadata=client.auth
    )
    after_refund = await check(4)
    assert (after_refund.allowed, after_refund.standing.used) == (True, 1)
    assert not (await check(5)).allowed


@pytest.mark.parametrize(
    ("primitive", "quantity", "field"),
    [
        ("", 1, "primitive"),
        ("SEO", 1, "primitive"),
        ("seo-x", 1, "primitive"),
        ("a" * 64, 1, "primitive"),
        ("seo", -1, "quantity"),
        ("seo", 1_000_001, "quantity"),
    ],
)
async def test_bad_usage_input_is_invalid_argument(
    client: Client, primitive: str, quantity: int, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1", primitive, quantity=quantity)
    details = failure_of(refused.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.metadata["field"] == field
    assert details.fields == (field,)


async def test_record_usage_may_pass_the_limit_and_later_calls_are_refused(
    client: Client,
) -> None:
    await subscribe(client, "t1", {"seo": 5})
    recorded = await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(tenant_id="t1", primitive="seo", quantity=7),
        metadata=client.auth,
    )
    assert (recorded.standing.used, recorded.standing.limit) == (7, 5)
    assert recorded.standing.remaining == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert failure_of(refused.value).message == "Plan quota exceeded for 'seo' (7/5 this period)"


async def test_record_usage_in_an_earlier_period_counts_there(
    client: Client, clock: FixedClock
) -> None:
    await subscribe(client, "t1", {"seo": 5})
    await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(
            tenant_id="t1", primitive="seo", quantity=4, occurred_at=timestamp(utc(2026, 5, 20))
        ),
        metadata=client.auth,
    )
    assert await usage_of(client, "t1") == {"seo": 0}
    assert await usage_of(client, "t1", as_of=utc(2026, 5, 1)) == {"seo": 4}
    # And the current period is still counted exactly after the counter moved.
    assert (await consume(client, "t1")).standing.used == 1


async def test_record_usage_rejects_future_and_missing_quantity(client: Client) -> None:
    future = timestamp(datetime(2026, 6, 15, 12, 6, tzinfo=UTC))
    for request, field in [
        (usage_pb2.RecordUsageRequest(tenant_id="t1", primitive="seo", quantity=0), "quantity"),
        (
            usage_pb2.RecordUsageRequest(
                tenant_id="t1", primitive="seo", quantity=1, occurred_at=future
            ),
            "occurred_at",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.usage.RecordUsage(request, metadata=client.auth)
        assert failure_of(refused.value).metadata["field"] == field


async def test_refund_restores_exactly_and_twice_is_harmless(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 3})
    events = [await consume(client, "t1", quantity=1) for _ in range(3)]
    refund = await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=events[1].usage_event_id),
        metadata=client.auth,
    )
    assert refund.refunded and refund.standing.used == 2
    again = await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=events[1].usage_event_id),
        metadata=client.auth,
    )
    assert not again.refunded and again.standing.used == 2
    assert (await consume(client, "t1")).standing.used == 3
    assert await usage_of(client, "t1") == {"seo": 3}


async def test_refund_of_unknown_foreign_or_malformed_events(
    client: Client, other_client: Client
) -> None:
    event = await consume(client, "t1")
    for caller, event_id, code in [
        (client, "999999", grpc.StatusCode.NOT_FOUND),
        (other_client, event.usage_event_id, grpc.StatusCode.NOT_FOUND),
        (client, "abc", grpc.StatusCode.INVALID_ARGUMENT),
        (client, "", grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await caller.usage.RefundUsage(
                usage_pb2.RefundUsageRequest(usage_event_id=event_id), metadata=caller.auth
            )
        assert refused.value.code() == code
    assert await usage_of(client, "t1") == {"seo": 1}


async def test_idempotent_retry_counts_once_and_replays_the_first_answer(
    client: Client,
) -> None:
    await subscribe(client, "t1", {"seo": 10})
    first = await consume(client, "t1", quantity=2, key="req-1")
    retry = await consume(client, "t1", quantity=2, key="req-1")
    assert not first.replayed and retry.replayed
    assert retry.usage_event_id == first.usage_event_id
    assert retry.standing == first.standing
    assert await usage_of(client, "t1") == {"seo": 2}
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await consume(client, "t1", quantity=3, key="req-1")
    details = failure_of(reused.value)
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_idempotency_keys_are_per_operator(client: Client, other_client: Client) -> None:
    a = await consume(client, "t1", key="same")
    b = await consume(other_client, "t1", key="same")
    assert not a.replayed and not b.replayed
    assert await usage_of(client, "t1") == {"seo": 1}
    assert await usage_of(other_client, "t1") == {"seo": 1}


async def test_a_refused_key_may_be_retried_once_there_is_room(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 1})
    first = await consume(client, "t1")
    with pytest.raises(grpc.aio.AioRpcError):
        await consume(client, "t1", key="later")
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=first.usage_event_id), metadata=client.auth
    )
    assert not (await consume(client, "t1", key="later")).replayed


async def test_retry_after_the_subscription_lapsed_still_gets_its_first_answer(
    client: Client,
) -> None:
    await subscribe(client, "t1", {"seo": 5})
    first = await consume(client, "t1", key="k")
    await subscribe(client, "t1", {"seo": 5}, status=subscription_pb2.SUBSCRIPTION_STATUS_CANCELED)
    retry = await consume(client, "t1", key="k")
    assert retry.replayed and retry.usage_event_id == first.usage_event_id


async def test_next_period_starts_from_zero_and_earlier_usage_stays_queryable(
    client: Client, clock: FixedClock
) -> None:
    await subscribe(client, "t1", {"seo": 2})
    await consume(client, "t1")
    await consume(client, "t1")
    with pytest.raises(grpc.aio.AioRpcError):
        await consume(client, "t1")
    clock.set(utc(2026, 7, 1))
    response = await consume(client, "t1")
    assert response.standing.used == 1
    assert response.standing.period_start.ToDatetime(UTC) == utc(2026, 7, 1)
    assert await usage_of(client, "t1", as_of=utc(2026, 6, 30)) == {"seo": 2}
    assert await usage_of(client, "t1") == {"seo": 1}


async def test_anchored_periods_follow_current_period_end(
    client: Client, clock: FixedClock
) -> None:
    anchor = utc(2026, 7, 31, 8)
    sub = await subscribe(client, "t1", {"seo": 1}, anchor=anchor)
    assert sub.period_start.ToDatetime(UTC) == utc(2026, 5, 31, 8)
    assert sub.period_end.ToDatetime(UTC) == utc(2026, 6, 30, 8)
    await consume(client, "t1")
    clock.set(utc(2026, 6, 30, 7, 59))
    with pytest.raises(grpc.aio.AioRpcError):
        await consume(client, "t1")
    clock.set(utc(2026, 6, 30, 8))
    response = await consume(client, "t1")
    assert response.standing.period_end.ToDatetime(UTC) == anchor


async def test_plan_change_mid_period_keeps_usage_and_applies_new_limits(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 10})
    for _ in range(4):
        await consume(client, "t1")
    await subscribe(client, "t1", {"seo": 4}, plan_key="basic")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert failure_of(refused.value).message == "Plan quota exceeded for 'seo' (4/4 this period)"
    await subscribe(client, "t1", {"seo": 6}, plan_key="pro")
    assert (await consume(client, "t1")).standing.used == 5


async def test_changing_the_period_recounts_the_new_window_from_the_events(
    client: Client, clock: FixedClock
) -> None:
    await subscribe(client, "t1", {"seo": 100})
    clock.set(utc(2026, 6, 2))  # Tuesday of the week before
    await consume(client, "t1", quantity=3)
    clock.set(utc(2026, 6, 15, 12))  # Monday
    await consume(client, "t1", quantity=5)
    await subscribe(client, "t1", {"seo": 100}, period=plan_pb2.PERIOD_WEEK)
    assert (await consume(client, "t1")).standing.used == 6
    await subscribe(client, "t1", {"seo": 100}, period=plan_pb2.PERIOD_MONTH)
    assert (await consume(client, "t1")).standing.used == 10


async def test_counters_always_equal_the_sum_of_unrefunded_events(
    client: Client, app: App, clock: FixedClock
) -> None:
    await subscribe(client, "t1", {"seo": 50, "aeo": 50})
    events = []
    for i in range(20):
        events.append(await consume(client, "t1", "seo" if i % 3 else "aeo", quantity=i % 4 + 1))
    for event in events[::4]:
        await client.usage.RefundUsage(
            usage_pb2.RefundUsageRequest(usage_event_id=event.usage_event_id),
            metadata=client.auth,
        )
    await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(tenant_id="t1", primitive="seo", quantity=9),
        metadata=client.auth,
    )
    engine = app.store._reader
    async with engine.connect() as conn:
        counters = {
            row.primitive: row.used
            for row in await conn.execute(select(usage_counters.c.primitive, usage_counters.c.used))
        }
        sums = {
            row.primitive: row.total
            for row in await conn.execute(
                select(usage_events.c.primitive, func.sum(usage_events.c.quantity).label("total"))
                .where(usage_events.c.refunded_at.is_(None))
                .group_by(usage_events.c.primitive)
            )
        }
    assert counters == sums
    assert await usage_of(client, "t1") == {key: used // UNIT for key, used in sums.items()}


async def test_same_tenant_id_under_two_operators_is_two_tenants(
    client: Client, other_client: Client
) -> None:
    await subscribe(client, "t1", {"seo": 1})
    await consume(client, "t1")
    with pytest.raises(grpc.aio.AioRpcError):
        await consume(client, "t1")
    for _ in range(3):
        await consume(other_client, "t1")
    assert await usage_of(other_client, "t1") == {"seo": 3}


async def test_get_usage_lists_every_quota_primitive_even_unused(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 1000, "aeo": 250, "email": 500})
    await consume(client, "t1", "custom", quantity=2)
    assert await usage_of(client, "t1") == {"seo": 0, "aeo": 0, "email": 0, "custom": 2}


async def test_usage_of_a_period_long_past(client: Client, clock: FixedClock) -> None:
    await subscribe(client, "t1", {"seo": 5})
    await consume(client, "t1")
    clock.set(clock.now() + timedelta(days=400))
    assert await usage_of(client, "t1") == {"seo": 0}
    assert await usage_of(client, "t1", as_of=utc(2026, 6, 20)) == {"seo": 1}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_call_that_finds_sqlite_locked_waits_and_counts_once(
    client: Client, database_url: str
) -> None:
    await subscribe(client, "t1", {"seo": 10})
    assert (await consume(client, "t1")).standing.used == 1  # the counter's terms are known
    # Another process (here a plain connection) holds the write lock for a while.
    other = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    call = asyncio.create_task(consume(client, "t1"))
    await asyncio.sleep(0.1)  # well within the hot path's retries (about 300 ms)
    assert not call.done()
    other.execute("COMMIT")
    other.close()

    assert (await call).standing.used == 2
    assert await usage_of(client, "t1") == {"seo": 2}


async def test_terms_changed_between_two_calls_apply_to_the_second(client: Client) -> None:
    # Lone calls of a known counter take the short path (one statement on
    # PostgreSQL, no batch machinery on SQLite); every change of terms must
    # still be seen by the very next call.
    await subscribe(client, "t1", {"seo": 10}, kit_primitives=["seo", "aeo"])
    assert (await consume(client, "t1")).standing.used == 1
    assert (await consume(client, "t1")).standing.used == 2

    await subscribe(client, "t1", {"seo": 10}, status=subscription_pb2.SUBSCRIPTION_STATUS_CANCELED)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert failure_of(refused.value).reason == "SUBSCRIPTION_INACTIVE"

    await subscribe(client, "t1", {"seo": 10}, kit_primitives=["aeo"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert failure_of(refused.value).code == grpc.StatusCode.PERMISSION_DENIED

    await subscribe(client, "t1", {"seo": 3}, kit_primitives=["seo"])
    assert (await consume(client, "t1")).standing.used == 3
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consume(client, "t1")
    assert failure_of(refused.value).message == "Plan quota exceeded for 'seo' (3/3 this period)"
    assert await usage_of(client, "t1") == {"seo": 3}


async def test_the_largest_quota_is_served_on_every_route(client: Client) -> None:
    """A quota of 10^12 units is 10^18 micro-units: the conditional write's
    threshold test once multiplied it by 80 in SQL (bigint out of range)."""
    await subscribe(client, "t1", {"seo": 1_000_000_000_000})
    for _ in range(3):
        consumed = await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(tenant_id="t1", primitive="seo", quantity=1_000_000),
            metadata=client.auth,
        )
    assert consumed.standing.used == 3_000_000
    assert consumed.standing.remaining == 1_000_000_000_000 - 3_000_000
