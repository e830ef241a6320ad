"""The billing resource over real gRPC on both databases:
projects, meters and fractional quantities, gauges, prices, credits, AI
usage, months in UTC, and bad input refused with nothing stored."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from billing.v1 import billing_pb2, meter_pb2, plan_pb2, project_pb2, subscription_pb2, usage_pb2
from google.type import decimal_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_service.clock import FixedClock
from billing_service.domain import quantities
from billing_service.domain import validation as v

from ..conftest import Client
from ..metering.usage_helpers import subscribe, timestamp
from ..rpc_errors import assert_invalid_argument, failure_of

USER: dict[str, Any] = {"user_id": "u1"}
ORG: dict[str, Any] = {"organization_id": "o1"}


def dec(text: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=text)


async def project(client: Client, project_id: str, owner: dict[str, Any], name: str = "") -> Any:
    response = await client.projects.UpsertProject(
        project_pb2.UpsertProjectRequest(project_id=project_id, name=name or project_id, **owner),
        metadata=client.auth,
    )
    return response


async def meter(client: Client, key: str, unit: str, aggregation: Any, scale: int) -> None:
    await client.meters.UpsertMeter(
        meter_pb2.UpsertMeterRequest(
            key=key, display_name=key.title(), unit=unit, aggregation=aggregation, scale=scale
        ),
        metadata=client.auth,
    )


async def record(
    client: Client,
    primitive: str,
    amount: str,
    at: datetime,
    owner: dict[str, Any] | None = None,
    project_id: str = "",
) -> usage_pb2.RecordUsageResponse:
    request = usage_pb2.RecordUsageRequest(
        primitive=primitive,
        quantity_decimal=dec(amount),
        project_id=project_id,
        **(owner or USER),
    )
    request.occurred_at.CopyFrom(timestamp(at))
    response: usage_pb2.RecordUsageResponse = await client.usage.RecordUsage(
        request, metadata=client.auth
    )
    return response


async def summary(
    client: Client, year: int, month: int, owner: dict[str, Any] | None = None
) -> billing_pb2.GetUsageSummaryResponse:
    response: billing_pb2.GetUsageSummaryResponse = await client.billing.GetUsageSummary(
        billing_pb2.GetUsageSummaryRequest(year=year, month=month, **(owner or USER)),
        metadata=client.auth,
    )
    return response


def june(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 6, day, hour, tzinfo=UTC)


async def test_projects_belong_to_one_owner(client: Client) -> None:
    created = await project(client, "proj_1", USER, "Site")
    assert created.created and created.project.user_id == "u1"
    renamed = await project(client, "proj_1", USER, "Site 2")
    assert not renamed.created and renamed.project.name == "Site 2"
    await project(client, "proj_2", ORG)
    with pytest.raises(grpc.aio.AioRpcError) as moved:
        await project(client, "proj_1", ORG)
    assert failure_of(moved.value).reason == "PROJECT_OWNER_CHANGED"
    listed = await client.projects.ListProjects(
        project_pb2.ListProjectsRequest(**USER), metadata=client.auth
    )
    assert [p.project_id for p in listed.projects] == ["proj_1"]
    got = await client.projects.GetProject(
        project_pb2.GetProjectRequest(project_id="proj_2"), metadata=client.auth
    )
    assert got.project.organization_id == "o1"


async def test_usage_of_a_project_counts_toward_its_owner(client: Client) -> None:
    await subscribe(client, "u1", {"seo": 3})
    await project(client, "site", USER)
    await project(client, "theirs", ORG)
    for _ in range(2):
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(primitive="seo", project_id="site", **USER),
            metadata=client.auth,
        )
    standing = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(primitive="seo", **USER), metadata=client.auth
    )
    assert standing.standing.used == 3  # the owner's quota counts its projects
    for project_id in ("theirs", "unknown"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.usage.RecordUsage(
                usage_pb2.RecordUsageRequest(
                    primitive="seo", quantity=1, project_id=project_id, **USER
                ),
                metadata=client.auth,
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    by_project = await client.billing.GetUsageByProject(
        billing_pb2.GetUsageByProjectRequest(year=2026, month=6, **USER), metadata=client.auth
    )
    assert [(p.project_id, p.usage.meters["seo"].value) for p in by_project.projects] == [
        ("site", "2")
    ]


async def test_fractional_quantities_follow_the_meters_scale(client: Client) -> None:
    await meter(client, "gpu_hours", "hour", meter_pb2.AGGREGATION_SUM, 2)
    await record(client, "gpu_hours", "2.5", june(1))
    await record(client, "gpu_hours", "0.25", june(2))
    await record(client, "sandbox_compute_hours", "0.000001", june(2))  # built in, scale 6
    for primitive, amount, field in [
        ("gpu_hours", "0.125", "quantity_decimal"),  # three places, the meter takes two
        ("seo", "0.5", "quantity_decimal"),  # no meter: whole units
        ("gpu_hours", "-1", "quantity_decimal"),
        ("gpu_hours", "0", "quantity_decimal"),
        ("gpu_hours", "NaN", "quantity_decimal"),
        ("gpu_hours", "1e3", "quantity_decimal"),
        ("gpu_hours", "1000000.01", "quantity_decimal"),
    ]:
        await assert_invalid_argument(record(client, primitive, amount, june(3)), field)
    both = usage_pb2.RecordUsageRequest(
        primitive="gpu_hours", quantity=1, quantity_decimal=dec("1"), **USER
    )
    await assert_invalid_argument(
        client.usage.RecordUsage(both, metadata=client.auth), "quantity_decimal"
    )
    got = await summary(client, 2026, 6)
    assert got.usage.meters["gpu_hours"].value == "2.75"
    assert got.usage.sandbox_compute_hours.value == "0.000001"
    usage = await client.usage.GetUsage(usage_pb2.GetUsageRequest(**USER), metadata=client.auth)
    assert usage.usage["gpu_hours"] == 2 and usage.usage_decimal["gpu_hours"].value == "2.75"


async def test_gauges_take_the_peak_or_the_latest_reading(client: Client) -> None:
    await meter(client, "seats", "seat", meter_pb2.AGGREGATION_LAST, 0)
    await record(client, "storage_gb", "10.5", june(1))
    peak = await record(client, "storage_gb", "40", june(2))
    await record(client, "storage_gb", "12", june(3))
    await record(client, "seats", "5", june(10))
    await record(client, "seats", "9", june(4))  # recorded later, happened earlier
    got = await summary(client, 2026, 6)
    assert (got.usage.storage_gb.value, got.usage.meters["seats"].value) == ("40", "5")
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=peak.usage_event_id), metadata=client.auth
    )
    assert (await summary(client, 2026, 6)).usage.storage_gb.value == "12"


async def test_prices_charge_beyond_the_included_units_rounded_half_even(client: Client) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key="pro",
            name="Pro",
            prices={
                "sandbox_compute_hours": plan_pb2.Price(unit_price=dec("0.05"), included=dec("10")),
                "api_calls": plan_pb2.Price(unit_price=dec("0.0025")),
                "storage_gb": plan_pb2.Price(unit_price=dec("1")),
            },
        ),
        metadata=client.auth,
    )
    await client.subscriptions.SetSubscription(
        subscription_pb2_request("u1", "pro"), metadata=client.auth
    )
    await record(client, "sandbox_compute_hours", "12.5", june(1))  # 2.5 h billable: 0.125
    for _ in range(5):  # 5 calls at 0.0025: 0.0125
        await record(client, "api_calls", "1", june(2))
    got = await summary(client, 2026, 6)
    items = {item.meter: item for item in got.line_items}
    assert set(items) == {"sandbox_compute_hours", "api_calls"}  # storage has no usage
    assert items["sandbox_compute_hours"].total_cost.value == "0.12"  # half-even of 0.125
    assert items["api_calls"].total_cost.value == "0.01"  # half-even of 0.0125
    assert items["sandbox_compute_hours"].name == "Sandbox compute"
    assert items["sandbox_compute_hours"].unit == "hour"
    assert (got.total_cost_cents.value, got.amount_due_cents.value, got.currency) == (
        "13",
        "13",
        "usd",
    )
    assert got.label == "June 2026"


def subscription_pb2_request(user: str, plan: str) -> subscription_pb2.SetSubscriptionRequest:
    return subscription_pb2.SetSubscriptionRequest(user_id=user, plan_key=plan)


async def test_credits_pay_months_in_order_earliest_expiry_first(
    client: Client, clock: FixedClock
) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key="pro", name="Pro", prices={"api_calls": plan_pb2.Price(unit_price=dec("1"))}
        ),
        metadata=client.auth,
    )
    await client.subscriptions.SetSubscription(
        subscription_pb2_request("u1", "pro"), metadata=client.auth
    )
    await record(client, "api_calls", "4", datetime(2026, 5, 20, tzinfo=UTC))  # 400 cents
    await record(client, "api_calls", "3", june(1))  # 300 cents
    now = clock.now()
    clock.set(datetime(2026, 5, 10, tzinfo=UTC))  # granted in May
    soon = datetime(2026, 6, 1, tzinfo=UTC)  # ends with May
    lasting = await grant(client, "500", None, "welcome", key="g1")
    expiring = await grant(client, "300", soon, "promo")
    again = await grant(client, "500", None, "welcome", key="g1")
    clock.set(now)
    assert again.replayed and again.grant.grant_id == lasting.grant.grant_id
    may, june_bill = await summary(client, 2026, 5), await summary(client, 2026, 6)
    # May draws 300 from the promo (it expires first), then 100 from the welcome.
    assert (may.credits_applied_cents.value, may.amount_due_cents.value) == ("400", "0")
    # The promo expired with May: June draws on what is left of the welcome.
    assert (june_bill.credits_applied_cents.value, june_bill.amount_due_cents.value) == (
        "300",
        "0",
    )
    balance = await client.billing.GetCreditBalance(
        billing_pb2.GetCreditBalanceRequest(**USER), metadata=client.auth
    )
    assert balance.balance_cents.value == "100"
    left = {g.grant_id: g.remaining_cents.value for g in balance.grants}
    assert left == {lasting.grant.grant_id: "100", expiring.grant.grant_id: "0"}
    await assert_invalid_argument(grant(client, "0", None, "x"), "amount_cents")
    await assert_invalid_argument(grant(client, "1.5", None, "x"), "amount_cents")
    await assert_invalid_argument(grant(client, "5", clock.now(), "x"), "expire_time")
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await grant(client, "7", None, "welcome", key="g1")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def grant(
    client: Client, cents: str, expires: datetime | None, reason: str, key: str = ""
) -> billing_pb2.GrantCreditsResponse:
    request = billing_pb2.GrantCreditsRequest(
        amount_cents=dec(cents), reason=reason, idempotency_key=key, **USER
    )
    if expires is not None:
        request.expire_time.CopyFrom(timestamp(expires))
    response: billing_pb2.GrantCreditsResponse = await client.billing.GrantCredits(
        request, metadata=client.auth
    )
    return response


async def test_ai_usage_is_counted_once_per_key(client: Client) -> None:
    await project(client, "proj_123", ORG)
    request = billing_pb2.RecordAiUsageRequest(
        project_id="proj_123",
        input_tokens=1500,
        output_tokens=800,
        reasoning_tokens=200,
        cost_cents=dec("0.05"),
        provider_model="anthropic/claude-sonnet-4",
        idempotency_key="call-1",
    )
    first = await client.billing.RecordAiUsage(request, metadata=client.auth)
    again = await client.billing.RecordAiUsage(request, metadata=client.auth)
    assert (first.ai_tokens, first.ai_cost_cents.value, first.replayed) == (2500, "0.05", False)
    assert again.replayed and again.usage_event_id == first.usage_event_id
    got = await summary(client, 2026, 6, ORG)
    assert (got.usage.ai_tokens.value, got.usage.ai_cost_cents.value) == ("2500", "0.05")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await client.billing.RecordAiUsage(
            billing_pb2.RecordAiUsageRequest(project_id="nope", input_tokens=1),
            metadata=client.auth,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    items = await client.billing.GetProjectUsage(
        billing_pb2.GetProjectUsageRequest(
            project_id="proj_123", from_date="2026-06-01", to_date="2026-06-30"
        ),
        metadata=client.auth,
    )
    assert [(i.item, i.units.value, i.unit_type) for i in items.items] == [
        ("AI cost", "0.05", "cent"),
        ("AI tokens", "2500", "token"),
    ]


async def test_months_are_calendar_months_in_utc(client: Client) -> None:
    last_instant = datetime(2026, 5, 31, 23, 59, 59, 999999, tzinfo=UTC)
    await record(client, "api_calls", "1", last_instant)
    await record(client, "api_calls", "2", datetime(2026, 6, 1, tzinfo=UTC))
    await record(client, "api_calls", "4", datetime(2025, 12, 31, 23, tzinfo=UTC))
    assert (await summary(client, 2026, 5)).usage.meters["api_calls"].value == "1"
    assert (await summary(client, 2026, 6)).usage.meters["api_calls"].value == "2"
    periods = await client.billing.GetBillingPeriods(
        billing_pb2.GetBillingPeriodsRequest(**USER), metadata=client.auth
    )
    assert [(p.label, p.year, p.month) for p in periods.periods] == [
        ("June 2026", 2026, 6),
        ("May 2026", 2026, 5),
        ("December 2025", 2025, 12),
    ]
    empty = await summary(client, 2026, 4)
    assert (dict(empty.usage.meters), empty.total_cost_cents.value) == ({}, "0")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"year": 2026, "month": 13}, "month"),
        ({"year": 2026, "month": 0}, "month"),
        ({"year": 1969, "month": 12}, "year"),
        ({"year": 2026, "month": 6, "user_id": "a/b"}, "user_id"),
        ({"year": 2026, "month": 6, "user_id": ""}, "user_id"),
    ],
)
async def test_bad_months_and_owners_are_invalid(
    client: Client, request_fields: dict[str, Any], field: str
) -> None:
    fields = {"user_id": "u1", **request_fields}
    await assert_invalid_argument(
        client.billing.GetUsageSummary(
            billing_pb2.GetUsageSummaryRequest(**fields), metadata=client.auth
        ),
        field,
    )


async def test_bad_ranges_and_ai_calls_store_nothing(client: Client) -> None:
    await project(client, "p", USER)
    for from_date, to_date, field in [
        ("2026-06-30", "2026-06-01", "to_date"),
        ("2026-13-01", "2026-06-01", "from_date"),
        ("2026-06-01", "2027-06-02", "to_date"),
        ("yesterday", "2026-06-01", "from_date"),
    ]:
        await assert_invalid_argument(
            client.billing.GetProjectUsage(
                billing_pb2.GetProjectUsageRequest(
                    project_id="p", from_date=from_date, to_date=to_date
                ),
                metadata=client.auth,
            ),
            field,
        )
    for fields, field in [
        ({"input_tokens": -1}, "input_tokens"),
        ({"input_tokens": 1, "cost_cents": dec("0.0000001")}, "cost_cents"),
        ({"input_tokens": 1, "cost_cents": dec("-0.05")}, "cost_cents"),
        ({}, "input_tokens"),
    ]:
        await assert_invalid_argument(
            client.billing.RecordAiUsage(
                billing_pb2.RecordAiUsageRequest(project_id="p", **fields), metadata=client.auth
            ),
            field,
        )
    periods = await client.billing.GetBillingPeriods(
        billing_pb2.GetBillingPeriodsRequest(**USER), metadata=client.auth
    )
    assert list(periods.periods) == []


async def test_a_future_grant_time_and_summary_of_now(client: Client, clock: FixedClock) -> None:
    await record(client, "api_calls", "1", clock.now() - timedelta(minutes=1))
    now = clock.now()
    got = await summary(client, now.year, now.month)
    assert got.usage.meters["api_calls"].value == "1"
    assert got.total_cost_cents.value == "0"  # no plan: nothing priced
    assert Decimal(got.amount_due_cents.value) == 0


DECIMALS = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(1_000_000), places=6, allow_nan=False
)


@given(st.lists(DECIMALS, max_size=50))
@settings(max_examples=300, deadline=None)
def test_micro_units_sum_exactly_as_decimals(amounts: list[Decimal]) -> None:
    parsed = [int(v.decimal("q", format(a, "f"), places=6, maximum=a).scaleb(6)) for a in amounts]
    assert quantities.to_decimal(sum(parsed)) == sum(amounts, Decimal(0))


async def test_recorded_decimals_sum_exactly_in_the_summary(client: Client) -> None:
    await meter(client, "gpu_hours", "hour", meter_pb2.AGGREGATION_SUM, 6)
    rng = random.Random(28)
    amounts = [Decimal(rng.randrange(1, 10**12)).scaleb(-6) for _ in range(200)]
    for index, amount in enumerate(amounts):
        await record(client, "gpu_hours", format(amount, "f"), june(1 + index % 14))
    got = await summary(client, 2026, 6)
    assert Decimal(got.usage.meters["gpu_hours"].value) == sum(amounts, Decimal(0))
