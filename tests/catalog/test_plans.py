"""PlanService over real gRPC, on SQLite and PostgreSQL."""

import asyncio
from datetime import timedelta

import grpc
from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2

from billing_service.clock import FixedClock

from ..conftest import Client
from ..rpc_errors import assert_invalid_argument, assert_not_found, refused


async def upsert_plan(client: Client, key: str, **fields: object) -> plan_pb2.UpsertPlanResponse:
    fields.setdefault("name", key.title())
    request = plan_pb2.UpsertPlanRequest(key=key, **fields)  # type: ignore[arg-type]
    response: plan_pb2.UpsertPlanResponse = await client.plans.UpsertPlan(
        request, metadata=client.auth
    )
    return response


async def list_plan_keys(client: Client, include_archived: bool = False) -> list[str]:
    response = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(include_archived=include_archived), metadata=client.auth
    )
    assert response.next_page_token == ""
    return [p.key for p in response.plans]


async def test_upsert_creates_a_plan_that_get_returns(client: Client, clock: FixedClock) -> None:
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="seo-kit", name="SEO", primitives=["seo"]),
        metadata=client.auth,
    )

    response = await upsert_plan(
        client,
        "pro",
        name="Pro",
        account_kit_id="seo-kit",
        stripe_price_id="price_123",
        quotas={"seo": 100, "crawl": 0},
        period=plan_pb2.PERIOD_WEEK,
    )

    assert response.created
    plan = response.plan
    assert plan.key == "pro"
    assert plan.name == "Pro"
    assert plan.account_kit_id == "seo-kit"
    assert plan.stripe_price_id == "price_123"
    assert dict(plan.quotas) == {"seo": 100, "crawl": 0}
    assert plan.period == plan_pb2.PERIOD_WEEK
    assert not plan.archived
    assert plan.create_time.ToDatetime(tzinfo=clock.now().tzinfo) == clock.now()
    assert plan.update_time == plan.create_time

    fetched = await client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    assert fetched.plan == plan


async def test_unspecified_period_means_month_and_no_kit_is_empty(client: Client) -> None:
    plan = (await upsert_plan(client, "free")).plan

    assert plan.period == plan_pb2.PERIOD_MONTH
    assert plan.account_kit_id == ""
    assert plan.stripe_price_id == ""
    assert dict(plan.quotas) == {}


async def test_same_upsert_twice_leaves_the_same_plan(client: Client) -> None:
    request = plan_pb2.UpsertPlanRequest(
        key="pro", name="Pro", quotas={"seo": 5}, period=plan_pb2.PERIOD_DAY
    )

    first = await client.plans.UpsertPlan(request, metadata=client.auth)
    second = await client.plans.UpsertPlan(request, metadata=client.auth)

    assert (first.created, second.created) == (True, False)
    assert second.plan == first.plan
    assert await list_plan_keys(client) == ["pro"]


async def test_upsert_replaces_every_field_and_keeps_create_time(
    client: Client, clock: FixedClock
) -> None:
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="k", name="K"), metadata=client.auth
    )
    first = await upsert_plan(
        client,
        "pro",
        account_kit_id="k",
        stripe_price_id="price_1",
        quotas={"seo": 5, "crawl": 1},
        period=plan_pb2.PERIOD_YEAR,
    )
    clock.set(clock.now() + timedelta(hours=1))

    second = await upsert_plan(client, "pro", name="Pro 2", quotas={"seo": 7})

    assert not second.created
    plan = second.plan
    assert (plan.name, plan.account_kit_id, plan.stripe_price_id) == ("Pro 2", "", "")
    assert dict(plan.quotas) == {"seo": 7}
    assert plan.period == plan_pb2.PERIOD_MONTH
    assert plan.create_time == first.plan.create_time
    assert plan.update_time.ToDatetime(tzinfo=clock.now().tzinfo) == clock.now()
    fetched = await client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    assert fetched.plan == plan


async def test_get_unknown_plan_is_not_found(client: Client) -> None:
    failure = await assert_not_found(
        client.plans.GetPlan(plan_pb2.GetPlanRequest(key="nope"), metadata=client.auth)
    )
    assert failure.metadata == {"resource": "plan", "name": "nope"}


async def test_upsert_with_unknown_kit_is_not_found_and_writes_nothing(client: Client) -> None:
    failure = await assert_not_found(
        client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key="pro", name="Pro", account_kit_id="ghost"),
            metadata=client.auth,
        )
    )

    assert failure.metadata == {"resource": "account kit", "name": "ghost"}
    await assert_not_found(
        client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    )


async def test_replacing_with_unknown_kit_leaves_the_plan_unchanged(client: Client) -> None:
    before = (await upsert_plan(client, "pro", quotas={"seo": 5})).plan

    await assert_not_found(
        client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key="pro", name="Other", account_kit_id="ghost"),
            metadata=client.auth,
        )
    )

    after = await client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    assert after.plan == before


async def test_list_is_ordered_by_key(client: Client) -> None:
    for key in ("mid", "zeta", "alpha", "0-first"):
        await upsert_plan(client, key)

    assert await list_plan_keys(client) == ["0-first", "alpha", "mid", "zeta"]


async def test_list_pages_through_every_plan_once(client: Client) -> None:
    keys = [f"plan-{i:02d}" for i in range(7)]
    for key in reversed(keys):
        await upsert_plan(client, key)

    seen: list[str] = []
    page_sizes: list[int] = []
    token = ""
    while True:
        page = await client.plans.ListPlans(
            plan_pb2.ListPlansRequest(page_size=3, page_token=token), metadata=client.auth
        )
        seen.extend(p.key for p in page.plans)
        page_sizes.append(len(page.plans))
        token = page.next_page_token
        if not token:
            break

    assert seen == keys
    assert page_sizes == [3, 3, 1]


async def test_a_full_last_page_ends_the_listing(client: Client) -> None:
    for key in ("a", "b", "c", "d"):
        await upsert_plan(client, key)

    first = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(page_size=2), metadata=client.auth
    )
    second = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(page_size=2, page_token=first.next_page_token),
        metadata=client.auth,
    )

    assert [p.key for p in second.plans] == ["c", "d"]
    assert second.next_page_token == ""


async def test_page_size_zero_means_fifty(client: Client) -> None:
    for i in range(51):
        await upsert_plan(client, f"p{i:02d}")

    page = await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)

    assert len(page.plans) == 50
    assert page.next_page_token
    rest = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(page_size=1000, page_token=page.next_page_token),
        metadata=client.auth,
    )
    assert [p.key for p in rest.plans] == ["p50"]
    assert rest.next_page_token == ""


async def test_page_size_bounds(client: Client) -> None:
    await upsert_plan(client, "only")

    for page_size in (1, 1000):
        page = await client.plans.ListPlans(
            plan_pb2.ListPlansRequest(page_size=page_size), metadata=client.auth
        )
        assert [p.key for p in page.plans] == ["only"]
    for page_size in (-1, 1001):
        await assert_invalid_argument(
            client.plans.ListPlans(
                plan_pb2.ListPlansRequest(page_size=page_size), metadata=client.auth
            ),
            "page_size",
        )


async def test_a_token_not_from_the_service_is_invalid(client: Client) -> None:
    for token in ("not-a-token!", "bm90IGpzb24", "eyJ4IjoxfQ", "eyJhZnRlciI6MX0"):
        # Garbage, base64 of "not json", of {"x":1}, and of {"after":1}.
        await assert_invalid_argument(
            client.plans.ListPlans(
                plan_pb2.ListPlansRequest(page_token=token), metadata=client.auth
            ),
            "page_token",
        )


async def test_archive_hides_the_plan_from_list_but_not_from_get(client: Client) -> None:
    await upsert_plan(client, "basic")
    await upsert_plan(client, "legacy")

    archived = await client.plans.ArchivePlan(
        plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth
    )

    assert archived.plan.archived
    assert await list_plan_keys(client) == ["basic"]
    assert await list_plan_keys(client, include_archived=True) == ["basic", "legacy"]
    fetched = await client.plans.GetPlan(
        plan_pb2.GetPlanRequest(key="legacy"), metadata=client.auth
    )
    assert fetched.plan.archived


async def test_archiving_twice_is_harmless(client: Client, clock: FixedClock) -> None:
    await upsert_plan(client, "legacy")
    first = await client.plans.ArchivePlan(
        plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth
    )
    clock.set(clock.now() + timedelta(minutes=5))

    second = await client.plans.ArchivePlan(
        plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth
    )

    assert second.plan == first.plan


async def test_archive_unknown_plan_is_not_found(client: Client) -> None:
    await assert_not_found(
        client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key="nope"), metadata=client.auth)
    )


async def test_upsert_restores_an_archived_plan(client: Client) -> None:
    first = await upsert_plan(client, "legacy", quotas={"seo": 1})
    await client.plans.ArchivePlan(plan_pb2.ArchivePlanRequest(key="legacy"), metadata=client.auth)

    restored = await upsert_plan(client, "legacy", quotas={"seo": 2})

    assert not restored.created
    assert not restored.plan.archived
    assert restored.plan.create_time == first.plan.create_time
    assert await list_plan_keys(client) == ["legacy"]
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(tenant_id="new-tenant", plan_key="legacy"),
        metadata=client.auth,
    )


async def test_another_operators_plans_are_invisible(client: Client, other_client: Client) -> None:
    await upsert_plan(client, "pro", quotas={"seo": 5})

    await assert_not_found(
        other_client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=other_client.auth)
    )
    await assert_not_found(
        other_client.plans.ArchivePlan(
            plan_pb2.ArchivePlanRequest(key="pro"), metadata=other_client.auth
        )
    )
    assert await list_plan_keys(other_client, include_archived=True) == []
    # Archiving was refused, so acme's plan is still listed.
    assert await list_plan_keys(client) == ["pro"]


async def test_operators_may_use_the_same_plan_key_independently(
    client: Client, other_client: Client
) -> None:
    await upsert_plan(client, "pro", quotas={"seo": 5})

    theirs = await upsert_plan(other_client, "pro", quotas={"seo": 99})

    assert theirs.created
    ours = await client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    assert dict(ours.plan.quotas) == {"seo": 5}
    assert await list_plan_keys(client) == ["pro"]
    assert await list_plan_keys(other_client) == ["pro"]


async def test_a_plan_cannot_use_another_operators_kit(
    client: Client, other_client: Client
) -> None:
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="acme-kit", name="Acme"), metadata=client.auth
    )

    failure = await refused(
        other_client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key="pro", name="Pro", account_kit_id="acme-kit"),
            metadata=other_client.auth,
        )
    )

    assert failure.code == grpc.StatusCode.NOT_FOUND
    assert await list_plan_keys(other_client, include_archived=True) == []


async def test_a_stripe_price_links_to_one_plan_of_the_operator(
    client: Client, other_client: Client
) -> None:
    await upsert_plan(client, "basic", stripe_price_id="price_x")
    await upsert_plan(client, "free")
    await upsert_plan(client, "trial")  # plans without a price: any number

    failure = await refused(upsert_plan(client, "pro", stripe_price_id="price_x"))

    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION, failure
    assert failure.reason == "STRIPE_PRICE_LINKED"
    assert failure.metadata == {"stripe_price_id": "price_x", "plan_key": "basic"}
    assert "basic" in failure.message
    await assert_not_found(
        client.plans.GetPlan(plan_pb2.GetPlanRequest(key="pro"), metadata=client.auth)
    )
    failure = await refused(upsert_plan(client, "free", stripe_price_id="price_x"))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION, failure
    free = await client.plans.GetPlan(plan_pb2.GetPlanRequest(key="free"), metadata=client.auth)
    assert free.plan.stripe_price_id == ""
    # The plan that has it may be upserted again; another operator's plans
    # are another catalog; a price cleared from its plan is free again.
    assert (await upsert_plan(client, "basic", stripe_price_id="price_x")).plan.key == "basic"
    await upsert_plan(other_client, "pro", stripe_price_id="price_x")
    await upsert_plan(client, "basic")
    assert (await upsert_plan(client, "pro", stripe_price_id="price_x")).created


async def test_concurrent_plans_with_one_price_link_it_once(client: Client) -> None:
    async def one(key: str) -> str:
        try:
            await upsert_plan(client, key, stripe_price_id="price_race")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return ""
        return key

    winners = [key for key in await asyncio.gather(*(one(f"p{i}") for i in range(12))) if key]

    assert len(winners) == 1
    assert await list_plan_keys(client) == winners
