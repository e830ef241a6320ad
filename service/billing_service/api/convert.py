"""proto <-> domain conversions, shared by the servicers."""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2
from google.protobuf import timestamp_pb2
from google.type import decimal_pb2

from ..domain import validation as v
from ..domain.errors import InvalidArgument
from ..domain.instants import to_micros
from ..domain.models import (
    AccountKit,
    DenialReason,
    Period,
    Plan,
    Standing,
    SubscriptionStatus,
    TenantTerms,
    Window,
)
from ..domain.owners import Owner, OwnerKind
from ..domain.periods import window_at
from ..domain.quantities import display, whole

T = TypeVar("T")


class _OwnedRequest(Protocol):
    tenant_id: str
    user_id: str
    organization_id: str


def owner_of(request: _OwnedRequest) -> Owner:
    """The owner a request names (exactly one of its three owner fields)."""
    return v.owner(request.tenant_id, request.user_id, request.organization_id)


class _BillingOwned(Protocol):
    user_id: str
    organization_id: str


def billing_owner(request: _BillingOwned) -> Owner:
    """The owner of a request of the billing resource (no tenant_id there)."""
    return v.owner("", request.user_id, request.organization_id)


def set_owner(message: _OwnedRequest, owner_key: str) -> None:
    """Fill a response's owner fields: user_id (and tenant_id, its older
    name) or organization_id."""
    owner = Owner.from_key(owner_key)
    if owner.kind is OwnerKind.USER:
        message.tenant_id = message.user_id = owner.id
    else:
        message.organization_id = owner.id


PERIOD_TO_PROTO = {
    Period.DAY: plan_pb2.PERIOD_DAY,
    Period.WEEK: plan_pb2.PERIOD_WEEK,
    Period.MONTH: plan_pb2.PERIOD_MONTH,
    Period.YEAR: plan_pb2.PERIOD_YEAR,
}
PERIOD_FROM_PROTO = {v: k for k, v in PERIOD_TO_PROTO.items()}

STATUS_TO_PROTO = {
    SubscriptionStatus.ACTIVE: subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE,
    SubscriptionStatus.TRIALING: subscription_pb2.SUBSCRIPTION_STATUS_TRIALING,
    SubscriptionStatus.PAST_DUE: subscription_pb2.SUBSCRIPTION_STATUS_PAST_DUE,
    SubscriptionStatus.CANCELED: subscription_pb2.SUBSCRIPTION_STATUS_CANCELED,
    SubscriptionStatus.UNPAID: subscription_pb2.SUBSCRIPTION_STATUS_UNPAID,
    SubscriptionStatus.INCOMPLETE: subscription_pb2.SUBSCRIPTION_STATUS_INCOMPLETE,
    SubscriptionStatus.INCOMPLETE_EXPIRED: subscription_pb2.SUBSCRIPTION_STATUS_INCOMPLETE_EXPIRED,
    SubscriptionStatus.PAUSED: subscription_pb2.SUBSCRIPTION_STATUS_PAUSED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}

DENIAL_TO_PROTO = {
    None: usage_pb2.DENIAL_REASON_UNSPECIFIED,
    DenialReason.QUOTA_EXCEEDED: usage_pb2.DENIAL_REASON_QUOTA_EXCEEDED,
    DenialReason.SUBSCRIPTION_INACTIVE: usage_pb2.DENIAL_REASON_SUBSCRIPTION_INACTIVE,
    DenialReason.PRIMITIVE_NOT_PERMITTED: usage_pb2.DENIAL_REASON_PRIMITIVE_NOT_PERMITTED,
}


def optional_enum(field: str, value: int, table: Mapping[Any, T]) -> T | None:
    """The domain value of a proto enum field, None for its UNSPECIFIED (0,
    as buf's STANDARD lint requires): the caller's default applies."""
    if value == 0:
        return None
    if value not in table:
        raise InvalidArgument(field, f"unknown value {value}")
    return table[value]


def period_from_proto(field: str, value: int) -> Period | None:
    return optional_enum(field, value, PERIOD_FROM_PROTO)


def status_from_proto(field: str, value: int) -> SubscriptionStatus | None:
    return optional_enum(field, value, STATUS_FROM_PROTO)


def timestamp(at: datetime) -> timestamp_pb2.Timestamp:
    # Arithmetic rather than Timestamp.FromDatetime, which goes through a time
    # tuple: this runs twice in every quota answer.
    seconds, micros = divmod(to_micros(at), 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def optional_datetime(field: str, message: object, name: str) -> datetime | None:
    """A Timestamp field as an aware datetime, None when unset."""
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, name)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "is not a valid timestamp") from None


def kit_to_proto(kit: AccountKit) -> account_kit_pb2.AccountKit:
    return account_kit_pb2.AccountKit(
        id=kit.id,
        name=kit.name,
        primitives=kit.primitives,
        permissions=kit.permissions,
        create_time=timestamp(kit.created_at),
        update_time=timestamp(kit.updated_at),
    )


def decimal(value: Decimal | int) -> decimal_pb2.Decimal:
    """A google.type.Decimal: a Decimal as it is, an int as micro-units."""
    if isinstance(value, int):
        return decimal_pb2.Decimal(value=display(value))
    return decimal_pb2.Decimal(value=format(value, "f"))


def prices_from_proto(prices: Mapping[str, plan_pb2.Price]) -> dict[str, tuple[str, str]]:
    return {key: (p.unit_price.value, p.included.value) for key, p in prices.items()}


def plan_to_proto(plan: Plan) -> plan_pb2.Plan:
    return plan_pb2.Plan(
        prices={
            key: plan_pb2.Price(unit_price=decimal(p.unit_price), included=decimal(p.included))
            for key, p in plan.prices.items()
        },
        currency=plan.currency,
        key=plan.key,
        name=plan.name,
        account_kit_id=plan.account_kit_id or "",
        stripe_price_id=plan.stripe_price_id or "",
        quotas=plan.quotas,
        period=PERIOD_TO_PROTO[plan.period],
        archived=plan.archived,
        create_time=timestamp(plan.created_at),
        update_time=timestamp(plan.updated_at),
    )


def subscription_to_proto(terms: TenantTerms, now: datetime) -> subscription_pb2.Subscription:
    sub, plan = terms.subscription, terms.plan
    assert sub is not None and plan is not None
    window = window_at(plan.period, sub.cycle_anchor, now)
    message = subscription_pb2.Subscription(
        plan_key=sub.plan_key,
        status=STATUS_TO_PROTO[sub.status],
        stripe_customer_id=sub.stripe_customer_id or "",
        stripe_subscription_id=sub.stripe_subscription_id or "",
        period=PERIOD_TO_PROTO[plan.period],
        period_start=timestamp(window.start),
        period_end=timestamp(window.end),
        account_kit_id=sub.account_kit_id or "",
        create_time=timestamp(sub.created_at),
        update_time=timestamp(sub.updated_at),
    )
    set_owner(message, sub.tenant_id)
    if sub.current_period_end is not None:
        message.current_period_end.CopyFrom(timestamp(sub.current_period_end))
    if sub.billing_cycle_anchor is not None:
        message.billing_cycle_anchor.CopyFrom(timestamp(sub.billing_cycle_anchor))
    return message


def set_standing(message: usage_pb2.QuotaStanding, standing: Standing) -> None:
    """Fill a response's `standing` in place: half the cost of building a
    QuotaStanding for the response's constructor to copy, on every quota call."""
    start, end = _window_stamps(standing.window)
    # The int64 twins are whole units rounded down, 0 when unlimited
    # (deprecated); the decimals are exact and unset when unlimited.
    message.used = whole(standing.used)
    message.used_decimal.value = display(standing.used)
    if standing.limit is None:
        message.unlimited = True
    else:
        message.limit = whole(standing.limit)
        message.remaining = whole(standing.remaining)
        message.limit_decimal.value = display(standing.limit)
        message.remaining_decimal.value = display(standing.remaining)
    message.period_start.CopyFrom(start)
    message.period_end.CopyFrom(end)
    message.plan_key = standing.plan_key or ""


# The Timestamps of recent windows: nearly every quota answer carries one of
# a few windows (the message constructor copies them).
_MAX_STAMPED_WINDOWS = 10_000
_stamped_windows: dict[
    tuple[datetime, datetime], tuple[timestamp_pb2.Timestamp, timestamp_pb2.Timestamp]
] = {}


def _window_stamps(window: Window) -> tuple[timestamp_pb2.Timestamp, timestamp_pb2.Timestamp]:
    bounds = (window.start, window.end)
    stamps = _stamped_windows.get(bounds)
    if stamps is None:
        if len(_stamped_windows) >= _MAX_STAMPED_WINDOWS:
            _stamped_windows.clear()
        stamps = _stamped_windows[bounds] = (timestamp(window.start), timestamp(window.end))
    return stamps
