"""The quota engine: who may use what, how much, in which period.

The policy (subscription status, account kit, plan quota, period) is decided
here from the tenant's terms; the atomic "count it if it fits" is the Store's.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import InvalidArgument, PrimitiveNotPermitted, SubscriptionInactive
from ..domain.models import (
    DenialReason,
    Period,
    QuotaDecision,
    RefundResult,
    Standing,
    TenantTerms,
    UsageRecorded,
    UsageReport,
    Window,
)
from ..domain.periods import window_at
from ..storage.store import Store, UsageKey

# Recorded usage may be stamped a little ahead of this server's clock (skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Enforcement:
    """What the tenant's terms say about one primitive."""

    denial: DenialReason | None
    limit: int | None  # None: unlimited
    period: Period
    anchor: datetime | None
    plan_key: str | None

    def window(self, at: datetime) -> Window:
        return window_at(self.period, self.anchor, at)


def enforcement(terms: TenantTerms, primitive: str) -> Enforcement:
    sub, plan, kit = terms.subscription, terms.plan, terms.kit
    if sub is None or plan is None:
        # Not subscribed: metered in calendar months, never limited.
        return Enforcement(None, None, Period.MONTH, None, None)
    denial = None
    if not sub.status.enforces_plan:
        denial = DenialReason.SUBSCRIPTION_INACTIVE
    elif sub.account_kit_id is not None and (kit is None or not kit.grants(primitive)):
        denial = DenialReason.PRIMITIVE_NOT_PERMITTED
    return Enforcement(
        denial, plan.quotas.get(primitive), plan.period, sub.current_period_end, plan.key
    )


class QuotaEngine:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def check(
        self, operator_id: int, tenant_id: str, primitive: str, quantity: int
    ) -> QuotaDecision:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        rule = enforcement(await self._store.get_terms(operator_id, key.tenant_id), key.primitive)
        window = rule.window(self._clock.now())
        used = await self._store.used_in_window(key, window)
        standing = Standing(used, rule.limit, window, rule.plan_key)
        reason = rule.denial
        if reason is None and rule.limit is not None and used + quantity > rule.limit:
            reason = DenialReason.QUOTA_EXCEEDED
        return QuotaDecision(reason is None, reason, standing)

    async def consume(
        self,
        operator_id: int,
        tenant_id: str,
        primitive: str,
        quantity: int,
        idempotency_key: str,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        terms = await self._store.get_terms(operator_id, key.tenant_id)
        rule = enforcement(terms, key.primitive)
        if rule.denial is not None:
            # A retry of a call that succeeded before the terms changed still
            # gets its first answer.
            replay = None if idem is None else await self._store.find_replay(key, quantity, idem)
            if replay is not None:
                return replay
            raise _denial_error(rule.denial, terms, key)
        return await self._store.add_usage(
            key, quantity, rule.limit, True, rule.window(now), rule.plan_key, now, idem, now
        )

    async def record(
        self,
        operator_id: int,
        tenant_id: str,
        primitive: str,
        quantity: int,
        idempotency_key: str,
        occurred_at: datetime | None,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=False)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        at = occurred_at or now
        if at > now + MAX_FUTURE_SKEW:
            raise InvalidArgument("occurred_at", "must not be more than 5 minutes in the future")
        rule = enforcement(await self._store.get_terms(operator_id, key.tenant_id), key.primitive)
        return await self._store.add_usage(
            key, quantity, rule.limit, False, rule.window(at), rule.plan_key, at, idem, now
        )

    async def refund(self, operator_id: int, usage_event_id: str) -> RefundResult:
        if not usage_event_id:
            raise InvalidArgument("usage_event_id", "is required")
        if not usage_event_id.isdigit() or len(usage_event_id) > 18:
            raise InvalidArgument("usage_event_id", "is not an id returned by this service")
        event = await self._store.refund_usage(operator_id, int(usage_event_id), self._clock.now())
        key = event.key
        rule = enforcement(await self._store.get_terms(operator_id, key.tenant_id), key.primitive)
        window = rule.window(event.occurred_at)
        used = await self._store.used_in_window(key, window)
        return RefundResult(event.refunded, Standing(used, rule.limit, window, rule.plan_key))

    async def usage(self, operator_id: int, tenant_id: str, as_of: datetime | None) -> UsageReport:
        tenant_id = v.tenant_id("tenant_id", tenant_id)
        terms = await self._store.get_terms(operator_id, tenant_id)
        rule = enforcement(terms, "")
        window = rule.window(as_of or self._clock.now())
        used = await self._store.usage_by_primitive(operator_id, tenant_id, window)
        quotas = terms.plan.quotas if terms.plan is not None else {}
        usage = {primitive: used.get(primitive, 0) for primitive in quotas} | used
        return UsageReport(terms, rule.period, window, dict(sorted(usage.items())))


def _usage_key(operator_id: int, tenant_id: str, primitive: str) -> UsageKey:
    return UsageKey(
        operator_id, v.tenant_id("tenant_id", tenant_id), v.primitive("primitive", primitive)
    )


def _denial_error(
    reason: DenialReason, terms: TenantTerms, key: UsageKey
) -> SubscriptionInactive | PrimitiveNotPermitted:
    assert terms.subscription is not None
    if reason is DenialReason.SUBSCRIPTION_INACTIVE:
        return SubscriptionInactive(key.tenant_id, terms.subscription.status.value)
    return PrimitiveNotPermitted(key.primitive, terms.subscription.account_kit_id or "")
