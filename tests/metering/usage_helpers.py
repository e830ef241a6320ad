"""Helpers for the metering tests: set up a plan and subscription in one
call, consume, and read usage."""

from datetime import UTC, datetime

from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2
from google.protobuf import timestamp_pb2

from ..conftest import Client


async def subscribe(
    client: Client,
    tenant_id: str,
    quotas: dict[str, int],
    *,
    plan_key: str = "pro",
    period: plan_pb2.Period = plan_pb2.PERIOD_MONTH,
    kit_primitives: list[str] | None = None,
    status: subscription_pb2.SubscriptionStatus = (subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE),
    anchor: datetime | None = None,
    assign_kit: bool = True,
) -> subscription_pb2.Subscription:
    """Upsert a plan (with a kit when kit_primitives is given) and subscribe."""
    kit_id = ""
    if kit_primitives is not None:
        kit_id = f"{plan_key}-kit"
        await client.kits.UpsertAccountKit(
            account_kit_pb2.UpsertAccountKitRequest(
                id=kit_id, name=kit_id, primitives=kit_primitives
            ),
            metadata=client.auth,
        )
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key=plan_key, name=plan_key, account_kit_id=kit_id, quotas=quotas, period=period
        ),
        metadata=client.auth,
    )
    request = subscription_pb2.SetSubscriptionRequest(
        tenant_id=tenant_id, plan_key=plan_key, status=status, assign_kit=assign_kit
    )
    if anchor is not None:
        request.current_period_end.CopyFrom(timestamp(anchor))
    response: subscription_pb2.SetSubscriptionResponse = await client.subscriptions.SetSubscription(
        request, metadata=client.auth
    )
    return response.subscription


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def timestamp(at: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(at)
    return ts


async def consume(
    client: Client, tenant_id: str, primitive: str = "seo", quantity: int = 0, key: str = ""
) -> usage_pb2.ConsumeQuotaResponse:
    response: usage_pb2.ConsumeQuotaResponse = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(
            tenant_id=tenant_id, primitive=primitive, quantity=quantity, idempotency_key=key
        ),
        metadata=client.auth,
    )
    return response


async def check(
    client: Client, tenant_id: str, primitive: str = "seo", quantity: int = 0
) -> usage_pb2.CheckQuotaResponse:
    response: usage_pb2.CheckQuotaResponse = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id=tenant_id, primitive=primitive, quantity=quantity),
        metadata=client.auth,
    )
    return response


async def usage_of(client: Client, tenant_id: str, as_of: datetime | None = None) -> dict[str, int]:
    request = usage_pb2.GetUsageRequest(tenant_id=tenant_id)
    if as_of is not None:
        request.as_of.CopyFrom(timestamp(as_of))
    response: usage_pb2.GetUsageResponse = await client.usage.GetUsage(
        request, metadata=client.auth
    )
    return dict(response.usage)
