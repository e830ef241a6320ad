"""Every input rule of the contract, over real gRPC on both backends.

A bad value is refused with INVALID_ARGUMENT (reason INVALID_ARGUMENT and a
BadRequest naming the field), never UNKNOWN or INTERNAL, and a refused request
writes nothing. Each test walks a table of cases, so that one server and one
database serve many cases.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2
from google.protobuf import timestamp_pb2

from .conftest import Client
from .rpc_errors import assert_invalid_argument

MAX_QUOTA = 1_000_000_000_000

# (field named in the error, fields of the request that break the rule)
Case = tuple[str, dict[str, Any]]

BAD_KEYS = ["", "Pro", "-pro", "_pro", "pro plan", "pro/x", "pro.x", "p" * 64, "prö"]

BAD_PLAN_FIELDS: list[Case] = [
    *[("key", {"key": key}) for key in BAD_KEYS],
    ("name", {"name": ""}),
    ("name", {"name": "   "}),
    ("name", {"name": "n" * 201}),
    # PostgreSQL cannot store NUL: refused on both backends alike.
    ("name", {"name": "nul\x00"}),
    ("name", {"name": "line\nbreak"}),
    ("account_kit_id", {"account_kit_id": "Bad Kit"}),
    ("account_kit_id", {"account_kit_id": "k" * 64}),
    ("stripe_price_id", {"stripe_price_id": "p" * 256}),
    ("stripe_price_id", {"stripe_price_id": " price_1"}),
    ("stripe_price_id", {"stripe_price_id": "price_\x00"}),
    ("quotas[seo]", {"quotas": {"seo": -1}}),
    ("quotas[seo]", {"quotas": {"seo": MAX_QUOTA + 1}}),
    ("quotas[seo]", {"quotas": {"seo": -(2**63)}}),
    ("quotas[Seo]", {"quotas": {"Seo": 1}}),
    ("quotas[9seo]", {"quotas": {"9seo": 1}}),
    ("quotas[seo-x]", {"quotas": {"seo-x": 1}}),
    ("quotas[]", {"quotas": {"": 1}}),
    ("quotas", {"quotas": {f"p{i}": 1 for i in range(101)}}),
    ("period", {"period": 99}),
    ("period", {"period": -1}),
]

BAD_KIT_FIELDS: list[Case] = [
    *[("id", {"id": key}) for key in BAD_KEYS if key],
    ("name", {"name": ""}),
    ("name", {"name": " "}),
    ("name", {"name": "n" * 201}),
    ("name", {"name": "nul\x00"}),
    ("primitives", {"primitives": ["Seo"]}),
    ("primitives", {"primitives": ["seo-x"]}),
    ("primitives", {"primitives": [""]}),
    ("primitives", {"primitives": ["**"]}),
    ("primitives", {"primitives": ["p" * 64]}),
    ("primitives", {"primitives": [f"p{i}" for i in range(101)]}),
    ("permissions", {"permissions": [""]}),
    ("permissions", {"permissions": ["x" * 201]}),
    ("permissions", {"permissions": ["read\x00write"]}),
    ("permissions", {"permissions": ["line\nbreak"]}),
    ("permissions", {"permissions": ["c1\x9bcontrol"]}),
    ("permissions", {"permissions": ["p"] * 101}),
    ("permissions", {"permissions": [f"perm {i}" for i in range(101)]}),
]

BAD_TENANTS = [
    *("", "a/b", "/", "x" * 201, " lead", "trail ", "tab\there", "nul\x00", "del\x7f"),
    # A C1 control, a line separator, a zero-width space, a direction override.
    *("next\x85line", "line\u2028separator", "zero\u200bwidth", "\u202etxt.exe"),
]

BAD_SUBSCRIPTION_FIELDS: list[Case] = [
    # No owner at all is told as a missing user_id.
    *[("tenant_id" if t else "user_id", {"tenant_id": t}) for t in BAD_TENANTS],
    *[("plan_key", {"plan_key": key}) for key in BAD_KEYS],
    ("status", {"status": 42}),
    ("status", {"status": -3}),
    ("stripe_customer_id", {"stripe_customer_id": "c" * 256}),
    ("stripe_customer_id", {"stripe_customer_id": "cus_1 "}),
    ("stripe_customer_id", {"stripe_customer_id": "cus_\x00"}),
    ("stripe_subscription_id", {"stripe_subscription_id": "s" * 256}),
    ("stripe_subscription_id", {"stripe_subscription_id": " sub_1"}),
    ("stripe_subscription_id", {"stripe_subscription_id": "sub_1\nsub_2"}),
    ("current_period_end", {"current_period_end": timestamp_pb2.Timestamp(seconds=2**40)}),
    ("current_period_end", {"current_period_end": timestamp_pb2.Timestamp(seconds=-(2**40))}),
    ("current_period_end", {"current_period_end": timestamp_pb2.Timestamp(nanos=-1)}),
]


async def refuse_all(
    cases: list[Case],
    base: dict[str, Any],
    call: Callable[[dict[str, Any]], Awaitable[Any]],
) -> None:
    for field, bad in cases:
        try:
            await assert_invalid_argument(call({**base, **bad}), field)
        except AssertionError as error:
            raise AssertionError(f"case {bad!r}: {error}") from error


async def list_everything(client: Client) -> tuple[list[Any], list[Any], list[Any]]:
    plans = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(include_archived=True, page_size=1000), metadata=client.auth
    )
    kits = await client.kits.ListAccountKits(
        account_kit_pb2.ListAccountKitsRequest(page_size=1000), metadata=client.auth
    )
    subscriptions = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(page_size=1000), metadata=client.auth
    )
    return list(plans.plans), list(kits.account_kits), list(subscriptions.subscriptions)


async def test_upsert_plan_refuses_bad_fields_and_writes_nothing(client: Client) -> None:
    def upsert(fields: dict[str, Any]) -> Awaitable[Any]:
        request = plan_pb2.UpsertPlanRequest(**fields)
        return client.plans.UpsertPlan(request, metadata=client.auth)  # type: ignore[no-any-return]

    await refuse_all(BAD_PLAN_FIELDS, {"key": "fresh", "name": "Fresh"}, upsert)

    assert await list_everything(client) == ([], [], [])


async def test_a_refused_plan_upsert_leaves_the_existing_plan_unchanged(client: Client) -> None:
    created = await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", quotas={"seo": 5}),
        metadata=client.auth,
    )

    def upsert(fields: dict[str, Any]) -> Awaitable[Any]:
        request = plan_pb2.UpsertPlanRequest(**fields)
        return client.plans.UpsertPlan(request, metadata=client.auth)  # type: ignore[no-any-return]

    # Only the cases that keep the key "pro", so that each would replace it.
    replacing = [(field, bad) for field, bad in BAD_PLAN_FIELDS if "key" not in bad]
    await refuse_all(replacing, {"key": "pro", "name": "Changed", "quotas": {"x": 1}}, upsert)

    plans, _, _ = await list_everything(client)
    assert plans == [created.plan]


async def test_upsert_plan_accepts_values_at_the_limits(client: Client) -> None:
    longest_primitive = "q" + "0" * 62
    quotas = {f"p{i}": i for i in range(98)} | {longest_primitive: 0, "top": MAX_QUOTA}

    response = await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key="k" * 63, name="n" * 200, stripe_price_id="p" * 255, quotas=quotas
        ),
        metadata=client.auth,
    )

    plan = response.plan
    assert (plan.key, plan.name, plan.stripe_price_id) == ("k" * 63, "n" * 200, "p" * 255)
    assert dict(plan.quotas) == quotas
    for key in ("0", "a-b_c", "9-lives"):
        await client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key=key, name="x"), metadata=client.auth
        )


async def test_plan_reads_refuse_malformed_keys(client: Client) -> None:
    for key in ("", "BAD", "a b"):
        await assert_invalid_argument(
            client.plans.GetPlan(plan_pb2.GetPlanRequest(key=key), metadata=client.auth), "key"
        )
        await assert_invalid_argument(
            client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key=key), metadata=client.auth),
            "key",
        )


async def test_upsert_kit_refuses_bad_fields_and_writes_nothing(client: Client) -> None:
    def upsert(fields: dict[str, Any]) -> Awaitable[Any]:
        request = account_kit_pb2.UpsertAccountKitRequest(**fields)
        return client.kits.UpsertAccountKit(  # type: ignore[no-any-return]
            request, metadata=client.auth
        )

    await refuse_all(BAD_KIT_FIELDS, {"id": "kit", "name": "Kit"}, upsert)
    # With an empty id a kit would be created under a new id: still nothing.
    other_fields = [(field, bad) for field, bad in BAD_KIT_FIELDS if "id" not in bad]
    await refuse_all(other_fields, {"id": "", "name": "Kit"}, upsert)

    assert await list_everything(client) == ([], [], [])


async def test_a_refused_kit_upsert_leaves_the_existing_kit_unchanged(client: Client) -> None:
    created = await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="kit", name="Kit", primitives=["seo"]),
        metadata=client.auth,
    )

    def upsert(fields: dict[str, Any]) -> Awaitable[Any]:
        request = account_kit_pb2.UpsertAccountKitRequest(**fields)
        return client.kits.UpsertAccountKit(  # type: ignore[no-any-return]
            request, metadata=client.auth
        )

    replacing = [(field, bad) for field, bad in BAD_KIT_FIELDS if "id" not in bad]
    await refuse_all(replacing, {"id": "kit", "name": "Changed", "permissions": ["p"]}, upsert)

    _, kits, _ = await list_everything(client)
    assert kits == [created.account_kit]


async def test_upsert_kit_accepts_values_at_the_limits(client: Client) -> None:
    primitives = [f"p{i}" for i in range(99)] + ["q" + "0" * 62]
    permissions = [f"perm {i}" for i in range(99)] + ["x" * 200]

    response = await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(
            id="k" * 63, name="n" * 200, primitives=primitives, permissions=permissions
        ),
        metadata=client.auth,
    )

    kit = response.account_kit
    assert (kit.id, kit.name) == ("k" * 63, "n" * 200)
    assert list(kit.primitives) == sorted(primitives)
    assert list(kit.permissions) == sorted(permissions)


async def test_get_kit_refuses_malformed_ids(client: Client) -> None:
    for kit_id in ("", "UPPER", "k" * 64):
        await assert_invalid_argument(
            client.kits.GetAccountKit(
                account_kit_pb2.GetAccountKitRequest(id=kit_id), metadata=client.auth
            ),
            "id",
        )


async def test_set_subscription_refuses_bad_fields_and_writes_nothing(client: Client) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
    )
    plans_before, _, _ = await list_everything(client)

    def subscribe(fields: dict[str, Any]) -> Awaitable[Any]:
        request = subscription_pb2.SetSubscriptionRequest(**fields)
        return client.subscriptions.SetSubscription(  # type: ignore[no-any-return]
            request, metadata=client.auth
        )

    await refuse_all(BAD_SUBSCRIPTION_FIELDS, {"tenant_id": "t", "plan_key": "pro"}, subscribe)

    assert await list_everything(client) == (plans_before, [], [])


async def test_a_refused_subscription_change_leaves_it_unchanged(client: Client) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
    )
    created = await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(tenant_id="t", plan_key="pro"),
        metadata=client.auth,
    )

    def subscribe(fields: dict[str, Any]) -> Awaitable[Any]:
        request = subscription_pb2.SetSubscriptionRequest(**fields)
        return client.subscriptions.SetSubscription(  # type: ignore[no-any-return]
            request, metadata=client.auth
        )

    replacing = [(f, bad) for f, bad in BAD_SUBSCRIPTION_FIELDS if "tenant_id" not in bad]
    await refuse_all(
        replacing,
        {
            "tenant_id": "t",
            "plan_key": "pro",
            "status": subscription_pb2.SUBSCRIPTION_STATUS_CANCELED,
            "stripe_customer_id": "cus_changed",
        },
        subscribe,
    )

    _, _, subscriptions = await list_everything(client)
    assert subscriptions == [created.subscription]


async def test_set_subscription_accepts_values_at_the_limits(client: Client) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
    )
    # Characters, not bytes: 200 two-byte characters are a valid tenant id.
    tenants = ["x" * 200, "é" * 200, "user@example.com", "org:42 #7", "日本"]

    for tenant in tenants:
        response = await client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(
                tenant_id=tenant,
                plan_key="pro",
                stripe_customer_id="c" * 255,
                stripe_subscription_id="s" * 255,
            ),
            metadata=client.auth,
        )
        assert response.subscription.tenant_id == tenant
        fetched = await client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(tenant_id=tenant), metadata=client.auth
        )
        assert fetched.subscription == response.subscription


async def test_set_subscription_accepts_the_extreme_valid_anchors(client: Client) -> None:
    """The range's ends (1970 to a century after the test's now, 2026-06-15);
    beyond them: test_instants_and_ids.py."""
    for period in (plan_pb2.PERIOD_DAY, plan_pb2.PERIOD_MONTH, plan_pb2.PERIOD_YEAR):
        await client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key=f"p{period}", name="P", period=period),
            metadata=client.auth,
        )
        for anchor in (
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2126, 6, 1, 23, 59, 59, 999999, tzinfo=UTC),
        ):
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(anchor)
            response = await client.subscriptions.SetSubscription(
                subscription_pb2.SetSubscriptionRequest(
                    tenant_id="t", plan_key=f"p{period}", current_period_end=stamp
                ),
                metadata=client.auth,
            )
            subscription = response.subscription
            assert subscription.current_period_end.ToDatetime(tzinfo=UTC) == anchor
            start = subscription.period_start.ToDatetime(tzinfo=UTC)
            end = subscription.period_end.ToDatetime(tzinfo=UTC)
            assert start <= datetime(2026, 6, 15, 12, tzinfo=UTC) < end


async def test_subscription_reads_refuse_malformed_ids(client: Client) -> None:
    for tenant in ("", "a/b", "x" * 201):
        await assert_invalid_argument(
            client.subscriptions.GetSubscription(
                subscription_pb2.GetSubscriptionRequest(tenant_id=tenant), metadata=client.auth
            ),
            "tenant_id" if tenant else "user_id",
        )
    await assert_invalid_argument(
        client.subscriptions.ListSubscriptions(
            subscription_pb2.ListSubscriptionsRequest(plan_key="NOT A KEY"), metadata=client.auth
        ),
        "plan_key",
    )
