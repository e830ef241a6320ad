"""The servicers of the billing resource: projects, meters and the billing
page (proto <-> domain only)."""

from decimal import Decimal
from typing import TypeAlias

import grpc
from billing.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    meter_pb2,
    meter_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
)
from google.type import decimal_pb2

from ..billing.bills import Grant, LineItem
from ..billing.page import Billing
from ..catalog.meter_model import Aggregation, Meter
from ..catalog.meters import Meters
from ..catalog.projects import Projects
from ..domain.models import Project
from ..domain.owners import Owner, OwnerKind
from ..domain.pagination import encode
from . import convert as c
from .guard import current_operator

Context: TypeAlias = grpc.aio.ServicerContext

AGGREGATION_TO_PROTO = {
    Aggregation.SUM: meter_pb2.AGGREGATION_SUM,
    Aggregation.MAX: meter_pb2.AGGREGATION_MAX,
    Aggregation.LAST: meter_pb2.AGGREGATION_LAST,
}
AGGREGATION_FROM_PROTO = {v: k for k, v in AGGREGATION_TO_PROTO.items()}
SEED_FIGURES = (
    "sandbox_compute_hours",
    "database_compute_hours",
    "database_storage_gb",
    "storage_gb",
    "ai_tokens",
    "ai_cost_cents",
    "deployment_compute_hours",
)


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    def __init__(self, projects: Projects) -> None:
        self._projects = projects

    async def UpsertProject(
        self, request: project_pb2.UpsertProjectRequest, context: Context
    ) -> project_pb2.UpsertProjectResponse:
        owner = c.billing_owner(request)
        project, created = await self._projects.upsert(
            current_operator(), request.project_id, request.name, owner
        )
        return project_pb2.UpsertProjectResponse(project=_project(project), created=created)

    async def GetProject(
        self, request: project_pb2.GetProjectRequest, context: Context
    ) -> project_pb2.GetProjectResponse:
        project = await self._projects.get(current_operator(), request.project_id)
        return project_pb2.GetProjectResponse(project=_project(project))

    async def ListProjects(
        self, request: project_pb2.ListProjectsRequest, context: Context
    ) -> project_pb2.ListProjectsResponse:
        owner = c.billing_owner(request)
        page = await self._projects.list(
            current_operator(), owner, request.page_size, request.page_token
        )
        return project_pb2.ListProjectsResponse(
            projects=[_project(p) for p in page.items], next_page_token=encode(page.next_cursor)
        )


class MeterServicer(meter_pb2_grpc.MeterServiceServicer):
    def __init__(self, meters: Meters) -> None:
        self._meters = meters

    async def UpsertMeter(
        self, request: meter_pb2.UpsertMeterRequest, context: Context
    ) -> meter_pb2.UpsertMeterResponse:
        aggregation = c.optional_enum("aggregation", request.aggregation, AGGREGATION_FROM_PROTO)
        meter, created = await self._meters.upsert(
            current_operator(),
            request.key,
            request.display_name,
            request.unit,
            aggregation,
            request.scale,
            request.stripe_event_name,
        )
        return meter_pb2.UpsertMeterResponse(meter=_meter(meter), created=created)

    async def GetMeter(
        self, request: meter_pb2.GetMeterRequest, context: Context
    ) -> meter_pb2.GetMeterResponse:
        return meter_pb2.GetMeterResponse(
            meter=_meter(await self._meters.get(current_operator(), request.key))
        )

    async def ListMeters(
        self, request: meter_pb2.ListMetersRequest, context: Context
    ) -> meter_pb2.ListMetersResponse:
        meters = await self._meters.all(current_operator())
        return meter_pb2.ListMetersResponse(meters=[_meter(m) for m in meters.values()])


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, billing: Billing) -> None:
        self._billing = billing

    async def RecordAiUsage(
        self, request: billing_pb2.RecordAiUsageRequest, context: Context
    ) -> billing_pb2.RecordAiUsageResponse:
        recorded = await self._billing.record_ai(
            current_operator(),
            request.project_id,
            (request.input_tokens, request.output_tokens, request.reasoning_tokens),
            request.cost_cents.value,
            request.provider_model,
            request.idempotency_key,
            c.optional_datetime("occurred_at", request, "occurred_at"),
        )
        return billing_pb2.RecordAiUsageResponse(
            usage_event_id=str(recorded.event_ids[0]),
            ai_tokens=recorded.tokens,
            ai_cost_cents=c.decimal(recorded.cost_cents),
            replayed=recorded.replayed,
            usage_event_ids=[str(i) for i in recorded.event_ids],
        )

    async def GetUsageSummary(
        self, request: billing_pb2.GetUsageSummaryRequest, context: Context
    ) -> billing_pb2.GetUsageSummaryResponse:
        bill, currency = await self._billing.summary(
            current_operator(), c.billing_owner(request), request.year, request.month
        )
        return billing_pb2.GetUsageSummaryResponse(
            year=bill.month.year,
            month=bill.month.month,
            label=bill.month.label,
            usage=_figures(bill.usage),
            **_seed_figures(bill.usage),
            line_items=[_line_item(item) for item in bill.items],
            currency=currency,
            total_cost_cents=c.decimal(bill.total_cents),
            credits_applied_cents=c.decimal(bill.credits_cents),
            amount_due_cents=c.decimal(bill.due_cents),
        )

    async def GetUsageByProject(
        self, request: billing_pb2.GetUsageByProjectRequest, context: Context
    ) -> billing_pb2.GetUsageByProjectResponse:
        found = await self._billing.by_project(
            current_operator(), c.billing_owner(request), request.year, request.month
        )
        return billing_pb2.GetUsageByProjectResponse(
            projects=[
                billing_pb2.ProjectUsage(
                    project_id=pid,
                    project_name=name,
                    usage=_figures(usage),
                    **_seed_figures(usage),
                )
                for pid, name, usage in found
            ]
        )

    async def GetProjectUsage(
        self, request: billing_pb2.GetProjectUsageRequest, context: Context
    ) -> billing_pb2.GetProjectUsageResponse:
        found = await self._billing.project_usage(
            current_operator(), request.project_id, request.from_date, request.to_date
        )
        return billing_pb2.GetProjectUsageResponse(
            items=[
                billing_pb2.ProjectUsageItem(
                    item=meter.display_name,
                    meter=meter.key,
                    units=c.decimal(used),
                    unit_type=meter.unit,
                )
                for meter, used in found
            ]
        )

    async def GetBillingPeriods(
        self, request: billing_pb2.GetBillingPeriodsRequest, context: Context
    ) -> billing_pb2.GetBillingPeriodsResponse:
        found = await self._billing.periods(current_operator(), c.billing_owner(request))
        return billing_pb2.GetBillingPeriodsResponse(
            periods=[
                billing_pb2.BillingPeriod(
                    label=bill.month.label,
                    year=bill.month.year,
                    month=bill.month.month,
                    total_cost_cents=c.decimal(bill.total_cents),
                    amount_due_cents=c.decimal(bill.due_cents),
                )
                for bill in found
            ]
        )

    async def GrantCredits(
        self, request: billing_pb2.GrantCreditsRequest, context: Context
    ) -> billing_pb2.GrantCreditsResponse:
        grant, replayed = await self._billing.grant(
            current_operator(),
            c.billing_owner(request),
            request.amount_cents.value,
            c.optional_datetime("expire_time", request, "expire_time"),
            request.reason,
            request.idempotency_key,
        )
        return billing_pb2.GrantCreditsResponse(
            grant=_grant(grant, Decimal(grant.amount_cents)), replayed=replayed
        )

    async def GetCreditBalance(
        self, request: billing_pb2.GetCreditBalanceRequest, context: Context
    ) -> billing_pb2.GetCreditBalanceResponse:
        balance, grants = await self._billing.balance(current_operator(), c.billing_owner(request))
        return billing_pb2.GetCreditBalanceResponse(
            balance_cents=c.decimal(balance),
            grants=[_grant(grant, left) for grant, left in grants],
        )


def _project(project: Project) -> project_pb2.Project:
    message = project_pb2.Project(
        project_id=project.id,
        name=project.name,
        create_time=c.timestamp(project.created_at),
        update_time=c.timestamp(project.updated_at),
    )
    owner = Owner.from_key(project.owner_key)
    if owner.kind is OwnerKind.USER:
        message.user_id = owner.id
    else:
        message.organization_id = owner.id
    return message


def _meter(meter: Meter) -> meter_pb2.Meter:
    message = meter_pb2.Meter(
        key=meter.key,
        display_name=meter.display_name,
        unit=meter.unit,
        aggregation=AGGREGATION_TO_PROTO[meter.aggregation],
        scale=meter.scale,
        built_in=meter.built_in,
        stripe_event_name=meter.stripe_event_name or "",
    )
    if meter.created_at is not None and meter.updated_at is not None:
        message.create_time.CopyFrom(c.timestamp(meter.created_at))
        message.update_time.CopyFrom(c.timestamp(meter.updated_at))
    return message


def _seed_figures(usage: dict[str, int]) -> dict[str, decimal_pb2.Decimal]:
    """The built-in meters' figures by field name (0 without usage): the
    billing page reads them at the top of a summary or project entry."""
    return {name: c.decimal(usage.get(name, 0)) for name in SEED_FIGURES}


def _figures(usage: dict[str, int]) -> billing_pb2.UsageFigures:
    return billing_pb2.UsageFigures(
        **_seed_figures(usage), meters={key: c.decimal(used) for key, used in usage.items()}
    )


def _line_item(item: LineItem) -> billing_pb2.LineItem:
    return billing_pb2.LineItem(
        name=item.meter.display_name,
        meter=item.meter.key,
        quantity=c.decimal(item.quantity),
        unit=item.meter.unit,
        unit_price=c.decimal(item.unit_price),
        included=c.decimal(item.included),
        total_cost=c.decimal(item.total_cost),
    )


def _grant(grant: Grant, remaining: Decimal | int) -> billing_pb2.CreditGrant:
    message = billing_pb2.CreditGrant(
        grant_id=str(grant.id),
        amount_cents=c.decimal(Decimal(grant.amount_cents)),
        remaining_cents=c.decimal(Decimal(remaining)),
        reason=grant.reason,
        grant_time=c.timestamp(grant.granted_at),
    )
    if grant.expires_at is not None:
        message.expire_time.CopyFrom(c.timestamp(grant.expires_at))
    return message
