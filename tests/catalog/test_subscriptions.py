"""SubscriptionService over real gRPC, on SQLite and PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2
from google.protobuf import field_mask_pb2, timestamp_pb2

from billing_service.clock import FixedClock

from ..conftest import Client
from ..metering.usage_helpers import subscribe as usage_subscribe
from ..rpc_errors import assert_invalid_argument, assert_not_found, refused


def ts(at: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def utc(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


async def add_kit(client: Client, kit_id: str) -> None:
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id=kit_id, name=kit_id, primitives=["*"]),
        metadata=client.auth,
    )


async def add_plan(
    client: Client, key: str, kit_id: str = "", period: int = plan_pb2.PERIOD_MONTH
) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key=key,
            name=key,
            account_kit_id=kit_id,
            quotas={"seo": 10},
            period=period,  # type: ignore[arg-type]
        ),
        metadata=client.auth,
    )


async def subscribe(
    client: Client, tenant_id: str, plan_key: str, **fields: object
) -> subscription_pb2.Subscription:
    response = await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(
            tenant_id=tenant_id,
            plan_key=plan_key,
            **fields,  # type: ignore[arg-type]
        ),
        metadata=client.auth,
    )
    subscription: subscription_pb2.Subscription = response.subscription
    return subscription


async def get_subscription(client: Client, tenant_id: str) -> subscription_pb2.Subscription:
    response = await client.subscriptions.GetSubscription(
        subscription_pb2.GetSubscriptionRequest(tenant_id=tenant_id), metadata=client.auth
    )
    subscription: subscription_pb2.Subscription = response.subscription
    return subscription


async def list_tenants(client: Client, plan_key: str = "") -> list[str]:
    response = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(plan_key=plan_key), metadata=client.auth
    )
    assert response.next_page_token == ""
    return [s.tenant_id for s in response.subscriptions]


async def test_set_subscription_with_defaults(client: Client, clock: FixedClock) -> None:
    await add_kit(client, "pro-kit")
    await add_plan(client, "pro", kit_id="pro-kit")

    subscription = await subscribe(client, "user-1", "pro")

    assert subscription.tenant_id == "user-1"
    assert subscription.plan_key == "pro"
    assert subscription.status == subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE
    assert subscription.stripe_customer_id == ""
    assert subscription.stripe_subscription_id == ""
    assert not subscription.HasField("current_period_end")
    assert subscription.period == plan_pb2.PERIOD_MONTH
    # No anchor: the calendar month in UTC around the clock's 2026-06-15.
    assert utc(subscription.period_start) == datetime(2026, 6, 1, tzinfo=UTC)
    assert utc(subscription.period_end) == datetime(2026, 7, 1, tzinfo=UTC)
    assert subscription.account_kit_id == "pro-kit"
    assert utc(subscription.create_time) == clock.now()
    assert subscription.update_time == subscription.create_time
    assert await get_subscription(client, "user-1") == subscription


async def test_set_subscription_with_every_field(client: Client) -> None:
    await add_plan(client, "daily", period=plan_pb2.PERIOD_DAY)
    anchor = datetime(2026, 6, 20, 8, 30, tzinfo=UTC)

    subscription = await subscribe(
        client,
        "org 42 (Ünïcode)",
        "daily",
        status=subscription_pb2.SUBSCRIPTION_STATUS_TRIALING,
        stripe_customer_id="cus_123",
        stripe_subscription_id="sub_456",
        current_period_end=ts(anchor),
    )

    assert subscription.tenant_id == "org 42 (Ünïcode)"
    assert subscription.status == subscription_pb2.SUBSCRIPTION_STATUS_TRIALING
    assert subscription.stripe_customer_id == "cus_123"
    assert subscription.stripe_subscription_id == "sub_456"
    assert utc(subscription.current_period_end) == anchor
    assert subscription.period == plan_pb2.PERIOD_DAY
    # Daily periods stepped back from the anchor: 08:30 to 08:30 around 12:00.
    assert utc(subscription.period_start) == datetime(2026, 6, 15, 8, 30, tzinfo=UTC)
    assert utc(subscription.period_end) == datetime(2026, 6, 16, 8, 30, tzinfo=UTC)
    assert await get_subscription(client, "org 42 (Ünïcode)") == subscription


async def test_every_status_round_trips(client: Client) -> None:
    await add_plan(client, "pro")
    statuses = [
        s
        for s in subscription_pb2.SubscriptionStatus.values()
        if s != subscription_pb2.SUBSCRIPTION_STATUS_UNSPECIFIED
    ]

    for status in statuses:
        assert (await subscribe(client, "t", "pro", status=status)).status == status
        assert (await get_subscription(client, "t")).status == status


async def test_setting_again_replaces_and_keeps_create_time(
    client: Client, clock: FixedClock
) -> None:
    await add_plan(client, "basic")
    await add_plan(client, "pro", period=plan_pb2.PERIOD_YEAR)
    first = await subscribe(client, "t", "basic", stripe_customer_id="cus_1")
    clock.set(clock.now() + timedelta(hours=2))

    second = await subscribe(
        client, "t", "pro", status=subscription_pb2.SUBSCRIPTION_STATUS_PAST_DUE
    )

    assert second.plan_key == "pro"
    assert second.status == subscription_pb2.SUBSCRIPTION_STATUS_PAST_DUE
    # Every field is replaced, so the Stripe id not sent again is cleared.
    assert second.stripe_customer_id == ""
    assert second.period == plan_pb2.PERIOD_YEAR
    assert second.create_time == first.create_time
    assert utc(second.update_time) == clock.now()
    assert await list_tenants(client) == ["t"]


async def test_get_unknown_tenant_is_not_found(client: Client) -> None:
    await assert_not_found(
        client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(tenant_id="nobody"), metadata=client.auth
        )
    )


async def test_unknown_plan_is_not_found_and_writes_nothing(client: Client) -> None:
    failure = await assert_not_found(
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(tenant_id="t", plan_key="ghost"),
            metadata=client.auth,
        )
    )

    assert failure.metadata == {"resource": "plan", "name": "ghost"}
    await assert_not_found(
        client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(tenant_id="t"), metadata=client.auth
        )
    )
    assert await list_tenants(client) == []


async def test_a_refused_change_leaves_the_subscription_as_it_was(client: Client) -> None:
    await add_plan(client, "pro")
    before = await subscribe(client, "t", "pro", stripe_customer_id="cus_1")

    await assert_not_found(
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(
                tenant_id="t", plan_key="ghost", stripe_customer_id="cus_2"
            ),
            metadata=client.auth,
        )
    )
    await assert_invalid_argument(
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(
                tenant_id="t", plan_key="pro", stripe_customer_id="c" * 256
            ),
            metadata=client.auth,
        ),
        "stripe_customer_id",
    )

    assert await get_subscription(client, "t") == before


async def test_assign_kit_by_default_gives_the_tenant_the_plans_kit(client: Client) -> None:
    await add_kit(client, "basic-kit")
    await add_kit(client, "pro-kit")
    await add_plan(client, "basic", kit_id="basic-kit")
    await add_plan(client, "pro", kit_id="pro-kit")
    await subscribe(client, "t", "basic")

    upgraded = await subscribe(client, "t", "pro")

    assert upgraded.account_kit_id == "pro-kit"
    assert (await get_subscription(client, "t")).account_kit_id == "pro-kit"


async def test_assign_kit_true_explicitly_is_the_default(client: Client) -> None:
    await add_kit(client, "pro-kit")
    await add_plan(client, "pro", kit_id="pro-kit")

    assert (await subscribe(client, "t", "pro", assign_kit=True)).account_kit_id == "pro-kit"


async def test_assign_kit_off_keeps_the_tenants_kit(client: Client) -> None:
    await add_kit(client, "basic-kit")
    await add_kit(client, "pro-kit")
    await add_plan(client, "basic", kit_id="basic-kit")
    await add_plan(client, "pro", kit_id="pro-kit")
    await subscribe(client, "t", "basic")

    moved = await subscribe(client, "t", "pro", assign_kit=False)

    assert moved.plan_key == "pro"
    assert moved.account_kit_id == "basic-kit"
    assert (await get_subscription(client, "t")).account_kit_id == "basic-kit"


async def test_assign_kit_off_for_a_new_tenant_leaves_it_without_kit(client: Client) -> None:
    await add_kit(client, "pro-kit")
    await add_plan(client, "pro", kit_id="pro-kit")

    assert (await subscribe(client, "t", "pro", assign_kit=False)).account_kit_id == ""


async def test_assigning_a_plan_without_kit_clears_the_tenants_kit(client: Client) -> None:
    await add_kit(client, "pro-kit")
    await add_plan(client, "pro", kit_id="pro-kit")
    await add_plan(client, "bare")
    await subscribe(client, "t", "pro")

    moved = await subscribe(client, "t", "bare")

    assert moved.account_kit_id == ""
    assert (await get_subscription(client, "t")).account_kit_id == ""


async def test_a_plan_without_kit_with_assign_off_keeps_the_tenants_kit(client: Client) -> None:
    await add_kit(client, "pro-kit")
    await add_plan(client, "pro", kit_id="pro-kit")
    await add_plan(client, "bare")
    await subscribe(client, "t", "pro")

    assert (await subscribe(client, "t", "bare", assign_kit=False)).account_kit_id == "pro-kit"


async def test_no_new_subscription_to_an_archived_plan(client: Client) -> None:
    await add_plan(client, "legacy")
    await add_plan(client, "current")
    await subscribe(client, "mover", "current")
    await client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth)

    for tenant in ("newcomer", "mover"):
        failure = await refused(
            client.subscriptions.SetSubscription(
                subscription_pb2.SetSubscriptionRequest(tenant_id=tenant, plan_key="legacy"),
                metadata=client.auth,
            )
        )
        assert failure.code == grpc.StatusCode.FAILED_PRECONDITION, failure
        assert failure.reason == "PLAN_ARCHIVED", failure
        assert failure.metadata == {"plan_key": "legacy"}

    await assert_not_found(
        client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(tenant_id="newcomer"), metadata=client.auth
        )
    )
    assert (await get_subscription(client, "mover")).plan_key == "current"


async def test_a_tenant_already_on_an_archived_plan_may_be_updated(client: Client) -> None:
    await add_plan(client, "legacy")
    await subscribe(client, "t", "legacy")
    await client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth)

    updated = await subscribe(
        client, "t", "legacy", status=subscription_pb2.SUBSCRIPTION_STATUS_CANCELED
    )

    assert updated.plan_key == "legacy"
    assert updated.status == subscription_pb2.SUBSCRIPTION_STATUS_CANCELED
    assert await list_tenants(client, plan_key="legacy") == ["t"]


async def test_a_restored_plan_takes_new_subscriptions(client: Client) -> None:
    await add_plan(client, "legacy")
    await client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth)
    await add_plan(client, "legacy")

    assert (await subscribe(client, "t", "legacy")).plan_key == "legacy"


async def test_list_pages_in_tenant_order_and_filters_by_plan(client: Client) -> None:
    await add_plan(client, "basic")
    await add_plan(client, "pro")
    tenants = {"t-3": "pro", "t-1": "basic", "t-5": "pro", "t-2": "pro", "t-4": "basic"}
    for tenant, plan in tenants.items():
        await subscribe(client, tenant, plan)

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await client.subscriptions.ListSubscriptions(
            subscription_pb2.ListSubscriptionsRequest(page_size=2, page_token=token),
            metadata=client.auth,
        )
        pages.append([s.tenant_id for s in page.subscriptions])
        token = page.next_page_token
        if not token:
            break

    assert pages == [["t-1", "t-2"], ["t-3", "t-4"], ["t-5"]]
    assert await list_tenants(client, plan_key="pro") == ["t-2", "t-3", "t-5"]
    assert await list_tenants(client, plan_key="basic") == ["t-1", "t-4"]
    assert await list_tenants(client, plan_key="ghost") == []
    first_pro = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(page_size=2, plan_key="pro"),
        metadata=client.auth,
    )
    rest = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(
            page_size=2, plan_key="pro", page_token=first_pro.next_page_token
        ),
        metadata=client.auth,
    )
    assert [s.tenant_id for s in rest.subscriptions] == ["t-5"]
    assert rest.next_page_token == ""


async def test_list_page_size_bounds_and_bad_tokens(client: Client) -> None:
    for page_size in (-1, 1001):
        await assert_invalid_argument(
            client.subscriptions.ListSubscriptions(
                subscription_pb2.ListSubscriptionsRequest(page_size=page_size),
                metadata=client.auth,
            ),
            "page_size",
        )
    await assert_invalid_argument(
        client.subscriptions.ListSubscriptions(
            subscription_pb2.ListSubscriptionsRequest(page_token="bogus"), metadata=client.auth
        ),
        "page_token",
    )


async def test_another_operators_tenants_and_plans_are_invisible(
    client: Client, other_client: Client
) -> None:
    await add_plan(client, "pro")
    await subscribe(client, "t", "pro")

    await assert_not_found(
        other_client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(tenant_id="t"), metadata=other_client.auth
        )
    )
    await assert_not_found(
        other_client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(tenant_id="t", plan_key="pro"),
            metadata=other_client.auth,
        )
    )
    assert await list_tenants(other_client) == []
    assert (await get_subscription(client, "t")).plan_key == "pro"


async def test_the_same_tenant_id_under_two_operators_is_two_tenants(
    client: Client, other_client: Client
) -> None:
    await add_plan(client, "pro")
    await add_plan(other_client, "basic")
    await subscribe(client, "t", "pro")

    await subscribe(other_client, "t", "basic")

    assert (await get_subscription(client, "t")).plan_key == "pro"
    assert (await get_subscription(other_client, "t")).plan_key == "basic"
    assert await list_tenants(client) == ["t"]
    assert await list_tenants(other_client) == ["t"]


async def _consume(client: Client, tenant_id: str) -> usage_pb2.ConsumeQuotaResponse:
    response: usage_pb2.ConsumeQuotaResponse = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(tenant_id=tenant_id, primitive="seo"), metadata=client.auth
    )
    return response


async def test_a_plan_change_without_a_cycle_keeps_the_subscriptions_cycle(
    client: Client, clock: FixedClock
) -> None:
    """The README's one-liner on an anchored tenant: its period, and the
    usage counted in it, stay; a quota used up stays used up."""
    may_28 = datetime(2026, 5, 28, 9, tzinfo=UTC)
    clock.set(datetime(2026, 5, 30, tzinfo=UTC))
    await usage_subscribe(client, "t", {"seo": 3}, plan_key="basic", anchor=may_28)
    await usage_subscribe(client, "other", {"seo": 3}, plan_key="pro")
    for _ in range(3):
        await _consume(client, "t")
    clock.set(datetime(2026, 6, 15, tzinfo=UTC))

    changed = await subscribe(client, "t", "pro")

    assert changed.plan_key == "pro"
    assert utc(changed.current_period_end) == may_28
    assert (utc(changed.period_start), utc(changed.period_end)) == (
        may_28,
        datetime(2026, 6, 28, 9, tzinfo=UTC),
    )
    failure = await refused(_consume(client, "t"))
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED, failure


async def test_the_update_mask_sets_the_cycle_as_given_even_unset(
    client: Client, clock: FixedClock
) -> None:
    await add_plan(client, "pro")
    anchor = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    feb_28 = datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    clock.set(datetime(2026, 2, 10, tzinfo=UTC))
    first = await subscribe(
        client, "t", "pro", billing_cycle_anchor=ts(anchor), current_period_end=ts(feb_28)
    )
    assert (utc(first.period_start), utc(first.period_end)) == (anchor, feb_28)
    assert utc(first.billing_cycle_anchor) == anchor

    # Either field given replaces the whole cycle.
    mar_5 = datetime(2026, 3, 5, tzinfo=UTC)
    moved = await subscribe(client, "t", "pro", current_period_end=ts(mar_5))
    assert not moved.HasField("billing_cycle_anchor")
    assert (utc(moved.period_start), utc(moved.period_end)) == (
        datetime(2026, 2, 5, tzinfo=UTC),
        mar_5,
    )

    cleared = await subscribe(
        client, "t", "pro", update_mask=field_mask_pb2.FieldMask(paths=["current_period_end"])
    )
    assert not cleared.HasField("current_period_end")
    assert not cleared.HasField("billing_cycle_anchor")
    assert (utc(cleared.period_start), utc(cleared.period_end)) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )

    await assert_invalid_argument(
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(
                tenant_id="t",
                plan_key="pro",
                update_mask=field_mask_pb2.FieldMask(paths=["plan_key"]),
            ),
            metadata=client.auth,
        ),
        "update_mask",
    )
    await assert_invalid_argument(
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(
                tenant_id="t",
                plan_key="pro",
                billing_cycle_anchor=timestamp_pb2.Timestamp(seconds=2**40),
            ),
            metadata=client.auth,
        ),
        "billing_cycle_anchor",
    )
    assert await get_subscription(client, "t") == cleared


async def test_concurrent_first_calls_for_one_owner_all_succeed_and_the_last_wins(
    client: Client,
) -> None:
    """Stripe sends checkout.session.completed and
    customer.subscription.created together: many first writes race."""
    await add_plan(client, "basic")
    await add_plan(client, "pro")
    owners, calls = 30, 8

    async def one(owner: int, call: int) -> subscription_pb2.Subscription:
        plan = ("basic", "pro")[call % 2]
        return await subscribe(
            client,
            f"owner-{owner}",
            plan,
            stripe_customer_id=f"cus_{owner}",
            stripe_subscription_id=f"sub_{plan}_{call}",
        )

    answers = await asyncio.gather(
        *(one(owner, call) for owner in range(owners) for call in range(calls))
    )

    assert len(answers) == owners * calls
    tenants = await list_tenants(client)
    assert sorted(tenants) == sorted(f"owner-{owner}" for owner in range(owners))
    for tenant in tenants:
        stored = await get_subscription(client, tenant)
        # One request's fields, whole: never a mix of two writes.
        plan, call = stored.stripe_subscription_id.split("_")[1:]
        assert stored.plan_key == plan == ("basic", "pro")[int(call) % 2]
        assert stored.stripe_customer_id == f"cus_{tenant.split('-')[1]}"
        assert stored.create_time.ToDatetime() <= stored.update_time.ToDatetime()
