"""Domain records. Plain frozen dataclasses: the servicers convert them from and
to protos, the store from and to rows."""

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAUSED = "paused"

    @property
    def enforces_plan(self) -> bool:
        """Statuses that serve metered calls within the plan's quotas."""
        return self in _SERVING_STATUSES


_SERVING_STATUSES = frozenset(
    {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE}
)


class DenialReason(enum.StrEnum):
    QUOTA_EXCEEDED = "quota_exceeded"
    SUBSCRIPTION_INACTIVE = "subscription_inactive"
    PRIMITIVE_NOT_PERMITTED = "primitive_not_permitted"


# The account-kit entry that grants every primitive.
ALL_PRIMITIVES = "*"


# The currency of a plan that names none, and of an owner without a plan.
DEFAULT_CURRENCY = "usd"


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    name: str
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    operator_id: int
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: tuple[str, ...] = ("full",)
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountKit:
    id: str
    name: str
    primitives: tuple[str, ...]
    permissions: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def grants(self, primitive: str) -> bool:
        return ALL_PRIMITIVES in self.primitives or primitive in self.primitives


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    name: str
    account_kit_id: str | None
    stripe_price_id: str | None
    quotas: dict[str, int]
    period: Period
    archived: bool
    created_at: datetime
    updated_at: datetime
    prices: dict[str, "Price"] = field(default_factory=dict)
    currency: str = DEFAULT_CURRENCY


@dataclass(frozen=True, slots=True)
class Price:
    """A meter's price in a plan: per unit beyond the included units."""

    unit_price: Decimal
    included: Decimal


@dataclass(frozen=True, slots=True)
class Subscription:
    tenant_id: str
    plan_key: str
    status: SubscriptionStatus
    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    current_period_end: datetime | None
    account_kit_id: str | None
    created_at: datetime
    updated_at: datetime
    # Stripe's billing_cycle_anchor: unlike current_period_end, never clamped
    # to a short month's last day.
    billing_cycle_anchor: datetime | None = None

    @property
    def cycle_anchor(self) -> datetime | None:
        """The instant the quota periods step from; None: calendar periods."""
        return self.billing_cycle_anchor or self.current_period_end


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """A subscription's cycle as Stripe gives it: its anchor and the current
    period's end (both None: calendar periods)."""

    anchor: datetime | None
    period_end: datetime | None


@dataclass(frozen=True, slots=True)
class TenantTerms:
    """What governs one tenant's metered calls: its subscription, the plan and
    the assigned kit, read together (None parts when absent)."""

    subscription: Subscription | None
    plan: Plan | None
    kit: AccountKit | None


@dataclass(frozen=True, slots=True)
class Window:
    """A quota period: [start, end)."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Standing:
    """A tenant's standing for one primitive in one period."""

    used: int
    limit: int | None  # None: unlimited
    window: Window
    plan_key: str | None

    @property
    def remaining(self) -> int:
        return 0 if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    reason: DenialReason | None
    standing: Standing


@dataclass(frozen=True, slots=True)
class UsageRecorded:
    """The result of ConsumeQuota or RecordUsage."""

    event_id: int
    standing: Standing
    replayed: bool


@dataclass(frozen=True, slots=True)
class RefundResult:
    refunded: bool
    standing: Standing
    # Every event of the refunded event's request (an AI call's two), in order.
    event_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UsageReport:
    terms: TenantTerms
    period: Period
    window: Window
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    owner_key: str  # domain/owners.py
    created_at: datetime
    updated_at: datetime


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
