"""Tenants' subscriptions to plans."""

from datetime import datetime

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import NotFound
from ..domain.models import Page, SubscriptionStatus, TenantTerms
from ..domain.owners import Owner
from ..storage.store import Store
from . import pagination


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
    ) -> TenantTerms:
        now = self._clock.now()
        if current_period_end is not None:
            v.instant("current_period_end", current_period_end, now)
        return await self._store.set_subscription(
            operator_id,
            owner.key,
            v.key("plan_key", plan_key),
            status or SubscriptionStatus.ACTIVE,
            v.external_id("stripe_customer_id", stripe_customer_id),
            v.external_id("stripe_subscription_id", stripe_subscription_id),
            current_period_end,
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
