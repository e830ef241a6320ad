"""The metering policy: what a tenant's terms say about one primitive. Pure."""

from dataclasses import dataclass
from datetime import datetime

from .models import DenialReason, Period, SubscriptionStatus, TenantTerms, Window
from .periods import window_at
from .quantities import micro


@dataclass(frozen=True, slots=True)
class Enforcement:
    denial: DenialReason | None
    limit: int | None  # micro-units; None: unlimited
    period: Period
    anchor: datetime | None
    plan_key: str | None
    status: SubscriptionStatus | None = None
    account_kit_id: str | None = None

    def window(self, at: datetime) -> Window:
        return window_at(self.period, self.anchor, at)


# Tenants without a subscription: metered in calendar months, never limited.
UNSUBSCRIBED = Enforcement(None, None, Period.MONTH, None, None)


def enforcement(terms: TenantTerms, primitive: str) -> Enforcement:
    """Statuses active, trialing and past_due enforce the plan's quota; the
    others refuse metered calls. An assigned kit must grant the primitive. A
    primitive absent from the plan's quotas is unlimited."""
    sub, plan, kit = terms.subscription, terms.plan, terms.kit
    if sub is None or plan is None:
        return UNSUBSCRIBED
    denial = None
    if not sub.status.enforces_plan:
        denial = DenialReason.SUBSCRIPTION_INACTIVE
    elif sub.account_kit_id is not None and (kit is None or not kit.grants(primitive)):
        denial = DenialReason.PRIMITIVE_NOT_PERMITTED
    limit = plan.quotas.get(primitive)
    return Enforcement(
        denial,
        None if limit is None else micro(limit),
        plan.period,
        sub.cycle_anchor,
        plan.key,
        sub.status,
        sub.account_kit_id,
    )
