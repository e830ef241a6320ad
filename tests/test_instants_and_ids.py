"""Instants outside 1970 to a century ahead, and ids that are not ASCII
digits, are INVALID_ARGUMENT naming the field, never INTERNAL."""

from datetime import UTC, datetime

import pytest
from billing.v1 import subscription_pb2, usage_pb2

from .conftest import Client
from .metering.usage_helpers import subscribe, timestamp, utc
from .rpc_errors import assert_invalid_argument

FAR = [
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    utc(1969, 12, 31),
]


@pytest.mark.parametrize("at", FAR, ids=["9999", "year-1", "1969"])
async def test_as_of_outside_the_range_is_refused(client: Client, at: datetime) -> None:
    await subscribe(client, "t", {"seo": 10}, anchor=utc(2026, 6, 20))
    request = usage_pb2.GetUsageRequest(tenant_id="t")
    request.as_of.CopyFrom(timestamp(at))
    await assert_invalid_argument(client.usage.GetUsage(request, metadata=client.auth), "as_of")


@pytest.mark.parametrize("at", FAR[1:], ids=["year-1", "1969"])
async def test_occurred_at_before_the_epoch_is_refused(client: Client, at: datetime) -> None:
    await subscribe(client, "t", {"seo": 10}, anchor=utc(2026, 6, 20))
    request = usage_pb2.RecordUsageRequest(tenant_id="t", primitive="seo", quantity=1)
    request.occurred_at.CopyFrom(timestamp(at))
    await assert_invalid_argument(
        client.usage.RecordUsage(request, metadata=client.auth), "occurred_at"
    )


@pytest.mark.parametrize("at", FAR, ids=["9999", "year-1", "1969"])
async def test_a_period_end_outside_the_range_is_refused(client: Client, at: datetime) -> None:
    await subscribe(client, "t", {"seo": 10})
    request = subscription_pb2.SetSubscriptionRequest(tenant_id="t", plan_key="pro")
    request.current_period_end.CopyFrom(timestamp(at))
    await assert_invalid_argument(
        client.subscriptions.SetSubscription(request, metadata=client.auth), "current_period_end"
    )


@pytest.mark.parametrize(
    "event_id",
    ["³", "²", "①", "\uff11", "\u0661", "-1", "1 ", "9" * 19],  # fullwidth and Arabic-Indic 1
)
async def test_event_ids_are_ascii_digits(client: Client, event_id: str) -> None:
    request = usage_pb2.RefundUsageRequest(usage_event_id=event_id)
    await assert_invalid_argument(
        client.usage.RefundUsage(request, metadata=client.auth), "usage_event_id"
    )
