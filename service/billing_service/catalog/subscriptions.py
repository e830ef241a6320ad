"""Tenants' subscriptions to plans."""

from collections.abc import Sequence
from datetime import datetime

from ..clock import Clock
from ..domain import pagination
from ..domain import validation as v
from ..domain.errors import InvalidArgument, NotFound
from ..domain.models import BillingCycle, Page, SubscriptionStatus, TenantTerms
from ..domain.owners import Owner
from .store import Store

# The fields of a subscription's billing cycle, as SetSubscription names them.
CYCLE_FIELDS = ("billing_cycle_anchor", "current_period_end")


class Subscriptions:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def set(
        self,
        operator_id: int,
        owner: Owner,
        plan_key: str,
        status: SubscriptionStatus | None,
        stripe_customer_id: str,
        stripe_subscription_id: str,
        current_period_end: datetime | None,
        assign_kit: bool,
        billing_cycle_anchor: datetime | None = None,
        update_mask: Sequence[str] = (),
    ) -> TenantTerms:
        """Create or replace the subscription. The cycle (anchor and period
        end) is replaced when either is given or `update_mask` names one,
        else kept, as Stripe keeps it across plan changes."""
        now = self._clock.now()
        for path in update_mask:
            if path not in CYCLE_FIELDS:
                raise InvalidArgument(
                    "update_mask", f"may name only {' and '.join(CYCLE_FIELDS)}, not {path!r}"
                )
        if current_period_end is not None:
            v.instant("current_period_end", current_period_end, now)
        if billing_cycle_anchor is not None:
            v.instant("billing_cycle_anchor", billing_cycle_anchor, now)
        given = current_period_end is not None or billing_cycle_anchor is not None
        return await self._store.set_subscription(
            operator_id,
            owner.key,
            v.key("plan_key", plan_key),
            status or SubscriptionStatus.ACTIVE,
            v.external_id("stripe_customer_id", stripe_customer_id),
            v.external_id("stripe_subscription_id", stripe_subscription_id),
            (
                BillingCycle(billing_cycle_anchor, current_period_end)
                if given or update_mask
                else None
            ),
            assign_kit,
            now,
        )

    async def get(self, operator_id: int, owner: Owner) -> TenantTerms:
        terms = await self._store.get_terms(operator_id, owner.key)
        if terms.subscription is None:
            raise NotFound("subscription", str(owner))
        return terms

    async def list(
        self, operator_id: int, page_size: int, page_token: str, plan_key: str
    ) -> Page[TenantTerms]:
        return await self._store.list_subscriptions(
            operator_id,
            pagination.decode("page_token", page_token),
            v.page_size("page_size", page_size),
            v.key("plan_key", plan_key) if plan_key else None,
        )
