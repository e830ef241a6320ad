"""The servicers: each method converts its request to domain calls and the
result back to a response. No policy, no storage here."""

from typing import TypeAlias

import grpc
from billing.v1 import (
    account_kit_pb2,
    account_kit_pb2_grpc,
    plan_pb2,
    plan_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)

from ..catalog.plans import Catalog
from ..catalog.subscriptions import Subscriptions
from ..clock import Clock
from ..domain.pagination import encode
from ..domain.quantities import whole
from ..metering.quota_engine import QuotaEngine
from . import convert as c
from .guard import current_operator

Context: TypeAlias = grpc.aio.ServicerContext


class AccountKitServicer(account_kit_pb2_grpc.AccountKitServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def UpsertAccountKit(
        self, request: account_kit_pb2.UpsertAccountKitRequest, context: Context
    ) -> account_kit_pb2.UpsertAccountKitResponse:
        kit, created = await self._catalog.upsert_kit(
            current_operator(),
            request.id,
            request.name,
            list(request.primitives),
            list(request.permissions),
        )
        return account_kit_pb2.UpsertAccountKitResponse(
            account_kit=c.kit_to_proto(kit), created=created
        )

    async def GetAccountKit(
        self, request: account_kit_pb2.GetAccountKitRequest, context: Context
    ) -> account_kit_pb2.GetAccountKitResponse:
        kit = await self._catalog.get_kit(current_operator(), request.id)
        return account_kit_pb2.GetAccountKitResponse(account_kit=c.kit_to_proto(kit))

    async def ListAccountKits(
        self, request: account_kit_pb2.ListAccountKitsRequest, context: Context
    ) -> account_kit_pb2.ListAccountKitsResponse:
        page = await self._catalog.list_kits(
            current_operator(), request.page_size, request.page_token
        )
        return account_kit_pb2.ListAccountKitsResponse(
            account_kits=[c.kit_to_proto(k) for k in page.items],
            next_page_token=encode(page.next_cursor),
        )


class PlanServicer(plan_pb2_grpc.PlanServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def UpsertPlan(
        self, request: plan_pb2.UpsertPlanRequest, context: Context
    ) -> plan_pb2.UpsertPlanResponse:
        plan, created = await self._catalog.upsert_plan(
            current_operator(),
            request.key,
            request.name,
            request.account_kit_id,
            request.stripe_price_id,
            dict(request.quotas),
            c.period_from_proto("period", request.period),
            c.prices_from_proto(request.prices),
            request.currency,
        )
        return plan_pb2.UpsertPlanResponse(plan=c.plan_to_proto(plan), created=created)

    async def GetPlan(
        self, request: plan_pb2.GetPlanRequest, context: Context
    ) -> plan_pb2.GetPlanResponse:
        plan = await self._catalog.get_plan(current_operator(), request.key)
        return plan_pb2.GetPlanResponse(plan=c.plan_to_proto(plan))

    async def ListPlans(
        self, request: plan_pb2.ListPlansRequest, context: Context
    ) -> plan_pb2.ListPlansResponse:
        page = await self._catalog.list_plans(
            current_operator(), request.page_size, request.page_token, request.include_archived
        )
        return plan_pb2.ListPlansResponse(
            plans=[c.plan_to_proto(p) for p in page.items],
            next_page_token=encode(page.next_cursor),
        )

    async def ArchivePlan(
        self, request: plan_pb2.ArchivePlanRequest, context: Context
    ) -> plan_pb2.ArchivePlanResponse:
        plan = await self._catalog.archive_plan(current_operator(), request.key)
        return plan_pb2.ArchivePlanResponse(plan=c.plan_to_proto(plan))


class SubscriptionServicer(subscription_pb2_grpc.SubscriptionServiceServicer):
    def __init__(self, subscriptions: Subscriptions, clock: Clock) -> None:
        self._subscriptions = subscriptions
        self._clock = clock

    async def SetSubscription(
        self, request: subscription_pb2.SetSubscriptionRequest, context: Context
    ) -> subscription_pb2.SetSubscriptionResponse:
        terms = await self._subscriptions.set(
            current_operator(),
            c.owner_of(request),
            request.plan_key,
            c.status_from_proto("status", request.status),
            request.stripe_customer_id,
            request.stripe_subscription_id,
            c.optional_datetime("current_period_end", request, "current_period_end"),
            request.assign_kit if request.HasField("assign_kit") else True,
            c.optional_datetime("billing_cycle_anchor", request, "billing_cycle_anchor"),
            list(request.update_mask.paths),
        )
        return subscription_pb2.SetSubscriptionResponse(
            subscription=c.subscription_to_proto(terms, self._clock.now())
        )

    async def GetSubscription(
        self, request: subscription_pb2.GetSubscriptionRequest, context: Context
    ) -> subscription_pb2.GetSubscriptionResponse:
        terms = await self._subscriptions.get(current_operator(), c.owner_of(request))
        return subscription_pb2.GetSubscriptionResponse(
            subscription=c.subscription_to_proto(terms, self._clock.now())
        )

    async def ListSubscriptions(
        self, request: subscription_pb2.ListSubscriptionsRequest, context: Context
    ) -> subscription_pb2.ListSubscriptionsResponse:
        page = await self._subscriptions.list(
            current_operator(), request.page_size, request.page_token, request.plan_key
        )
        now = self._clock.now()
        return subscription_pb2.ListSubscriptionsResponse(
            subscriptions=[c.subscription_to_proto(t, now) for t in page.items],
            next_page_token=encode(page.next_cursor),
        )


class UsageServicer(usage_pb2_grpc.UsageServiceServicer):
    def __init__(self, engine: QuotaEngine) -> None:
        self._engine = engine

    async def CheckQuota(
        self, request: usage_pb2.CheckQuotaRequest, context: Context
    ) -> usage_pb2.CheckQuotaResponse:
        decision = await self._engine.check(
            current_operator(),
            c.owner_of(request),
            request.primitive,
            request.quantity,
            request.quantity_decimal.value,
        )
        response = usage_pb2.CheckQuotaResponse(
            allowed=decision.allowed, reason=c.DENIAL_TO_PROTO[decision.reason]
        )
        c.set_standing(response.standing, decision.standing)
        return response

    async def ConsumeQuota(
        self, request: usage_pb2.ConsumeQuotaRequest, context: Context
    ) -> usage_pb2.ConsumeQuotaResponse:
        result = await self._engine.consume(
            current_operator(),
            c.owner_of(request),
            request.primitive,
            request.quantity,
            request.idempotency_key,
            request.quantity_decimal.value,
            request.project_id,
        )
        response = usage_pb2.ConsumeQuotaResponse(
            usage_event_id=str(result.event_id), replayed=result.replayed
        )
        c.set_standing(response.standing, result.standing)
        return response

    async def RecordUsage(
        self, request: usage_pb2.RecordUsageRequest, context: Context
    ) -> usage_pb2.RecordUsageResponse:
        result = await self._engine.record(
            current_operator(),
            c.owner_of(request),
            request.primitive,
            request.quantity,
            request.idempotency_key,
            c.optional_datetime("occurred_at", request, "occurred_at"),
            request.quantity_decimal.value,
            request.project_id,
        )
        response = usage_pb2.RecordUsageResponse(
            usage_event_id=str(result.event_id), replayed=result.replayed
        )
        c.set_standing(response.standing, result.standing)
        return response

    async def RefundUsage(
        self, request: usage_pb2.RefundUsageRequest, context: Context
    ) -> usage_pb2.RefundUsageResponse:
        result = await self._engine.refund(current_operator(), request.usage_event_id)
        response = usage_pb2.RefundUsageResponse(
            refunded=result.refunded, usage_event_ids=[str(i) for i in result.event_ids]
        )
        c.set_standing(response.standing, result.standing)
        return response

    async def GetUsage(
        self, request: usage_pb2.GetUsageRequest, context: Context
    ) -> usage_pb2.GetUsageResponse:
        report = await self._engine.usage(
            current_operator(), c.owner_of(request), c.optional_datetime("as_of", request, "as_of")
        )
        sub, plan = report.terms.subscription, report.terms.plan
        return usage_pb2.GetUsageResponse(
            plan=plan.key if plan is not None else "",
            status=(
                c.STATUS_TO_PROTO[sub.status]
                if sub is not None
                else subscription_pb2.SUBSCRIPTION_STATUS_UNSPECIFIED
            ),
            period=c.PERIOD_TO_PROTO[report.period],
            quotas=plan.quotas if plan is not None else {},
            usage={key: whole(used) for key, used in report.usage.items()},
            usage_decimal={key: c.decimal(used) for key, used in report.usage.items()},
            period_start=c.timestamp(report.window.start),
            period_end=c.timestamp(report.window.end),
        )
