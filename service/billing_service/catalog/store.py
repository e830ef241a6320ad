"""The Store: every read and write of the service, as short transactions.

Metered calls (check, consume, record, refund) are not here but in the
metering core (metering/), which batches them; usage reports are here.
"""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.errors import (
    AlreadyExists,
    NotFound,
    PlanArchived,
    StorageUnavailable,
    StripePriceLinked,
)
from ..domain.instants import from_micros, to_micros
from ..domain.models import (
    AccountKit,
    ApiKeyInfo,
    BillingCycle,
    Operator,
    Page,
    Period,
    Plan,
    Price,
    SubscriptionStatus,
    TenantTerms,
    Window,
)
from ..end_users.alerts import changed_limits, raise_reached_alerts
from ..storage.tables import (
    account_kits,
    api_keys,
    operators,
    plans,
    subscriptions,
    usage_events,
)
from .key_store import KeysStore, api_key_info
from .rows import (
    kit_from_row,
    plan_from_row,
    prices_to_json,
    subscription_from_row,
)

T = TypeVar("T")

_FIRST_WRITE_ATTEMPTS = 3


class Store(KeysStore):
    """Operators, keys, kits, plans, subscriptions and usage reports."""

    # -- operators and keys -------------------------------------------------

    async def create_operator(self, name: str, now: datetime) -> Operator:
        async def work(conn: AsyncConnection) -> Operator:
            row = (
                await conn.execute(
                    self._insert(operators)
                    .values(name=name, created_at=to_micros(now))
                    .on_conflict_do_nothing()
                    .returning(operators.c.id)
                )
            ).first()
            if row is None:
                raise AlreadyExists("operator", name)
            return Operator(id=row.id, name=name, created_at=now)

        return await self._write(work)

    async def get_operator(self, name: str) -> Operator:
        async def work(conn: AsyncConnection) -> Operator:
            row = (await conn.execute(select(operators).where(operators.c.name == name))).first()
            if row is None:
                raise NotFound("operator", name)
            return Operator(id=row.id, name=row.name, created_at=from_micros(row.created_at))

        return await self._read(work)

    async def list_operators(self) -> list[Operator]:
        async def work(conn: AsyncConnection) -> list[Operator]:
            rows = (await conn.execute(select(operators).order_by(operators.c.name))).all()
            return [
                Operator(id=r.id, name=r.name, created_at=from_micros(r.created_at)) for r in rows
            ]

        return await self._read(work)

    async def add_api_key(
        self, operator_id: int, key_id: str, key_hash: str, prefix: str, now: datetime
    ) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    operator_id=operator_id,
                    key_hash=key_hash,
                    prefix=prefix,
                    created_at=to_micros(now),
                )
            )

        await self._write(work)

    async def list_api_keys(self, operator_id: int) -> list[ApiKeyInfo]:
        async def work(conn: AsyncConnection) -> list[ApiKeyInfo]:
            rows = await conn.execute(
                select(api_keys)
                .where(api_keys.c.operator_id == operator_id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            )
            return [api_key_info(r) for r in rows]

        return await self._read(work)

    async def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyInfo:
        async def work(conn: AsyncConnection) -> ApiKeyInfo:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=to_micros(now))
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
            if row is None:
                raise NotFound("api key", key_id)
            return api_key_info(row)

        return await self._write(work)

    # -- account kits -------------------------------------------------------

    async def upsert_kit(
        self,
        operator_id: int,
        kit_id: str,
        name: str,
        primitives: tuple[str, ...],
        permissions: tuple[str, ...],
        now: datetime,
    ) -> tuple[AccountKit, bool]:
        values = {
            "name": name,
            "primitives": json.dumps(list(primitives)),
            "permissions": json.dumps(list(permissions)),
            "updated_at": to_micros(now),
        }
        where = (account_kits.c.operator_id == operator_id, account_kits.c.id == kit_id)

        async def work(conn: AsyncConnection) -> tuple[AccountKit, bool]:
            created = (
                await conn.execute(
                    self._insert(account_kits)
                    .values(operator_id=operator_id, id=kit_id, created_at=to_micros(now), **values)
                    .on_conflict_do_nothing()
                    .returning(account_kits.c.id)
                )
            ).first() is not None
            if not created:
                await conn.execute(update(account_kits).where(*where).values(**values))
            await self._bump_terms_version(conn, operator_id)
            row = (await conn.execute(select(account_kits).where(*where))).one()
            return kit_from_row(row), created

        return await self._write(work)

    async def get_kit(self, operator_id: int, kit_id: str) -> AccountKit:
        async def work(conn: AsyncConnection) -> AccountKit:
            row = (
                await conn.execute(
                    select(account_kits).where(
                        account_kits.c.operator_id == operator_id, account_kits.c.id == kit_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound("account kit", kit_id)
            return kit_from_row(row)

        return await self._read(work)

    async def list_kits(self, operator_id: int, after: str | None, limit: int) -> Page[AccountKit]:
        query = select(account_kits).where(account_kits.c.operator_id == operator_id)
        if after is not None:
            query = query.where(account_kits.c.id > after)
        query = query.order_by(account_kits.c.id).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Page[AccountKit]:
            rows = (await conn.execute(query)).all()
            return _page([kit_from_row(r) for r in rows], limit, lambda k: k.id)

        return await self._read(work)

    # -- plans --------------------------------------------------------------

    async def upsert_plan(
        self,
        operator_id: int,
        key: str,
        name: str,
        account_kit_id: str | None,
        stripe_price_id: str | None,
        quotas: dict[str, int],
        period: Period,
        prices: dict[str, Price],
        currency: str,
        now: datetime,
    ) -> tuple[Plan, bool]:
        values = {
            "name": name,
            "account_kit_id": account_kit_id,
            "stripe_price_id": stripe_price_id,
            "quotas": json.dumps(quotas),
            "period": period.value,
            "prices": prices_to_json(prices),
            "currency": currency,
            "archived": False,
            "updated_at": to_micros(now),
        }
        where = (plans.c.operator_id == operator_id, plans.c.key == key)

        async def work(conn: AsyncConnection) -> tuple[Plan, bool]:
            if account_kit_id is not None:
                await self._require_kit(conn, operator_id, account_kit_id)
            if stripe_price_id is not None:
                await self._require_price_free(conn, operator_id, key, stripe_price_id)
            before = (await conn.execute(select(plans).where(*where))).first()
            created = (
                await conn.execute(
                    self._insert(plans)
                    .values(operator_id=operator_id, key=key, created_at=to_micros(now), **values)
                    # Only the key: a price another plan has must fail.
                    .on_conflict_do_nothing(index_elements=["operator_id", "key"])
                    .returning(plans.c.key)
                )
            ).first() is not None
            if not created:
                await conn.execute(update(plans).where(*where).values(**values))
            await self._bump_terms_version(conn, operator_id)
            plan = plan_from_row((await conn.execute(select(plans).where(*where))).one())
            old = plan_from_row(before) if before is not None else None
            await self._raise_subscribers_alerts(conn, operator_id, old, plan, now)
            return plan, created

        try:
            return await self._write(work)
        except IntegrityError:
            # A concurrent upsert linked the price first: run again, now
            # refused by the check above with the plan that has it.
            return await self._write(work)

    async def _require_price_free(
        self, conn: AsyncConnection, operator_id: int, key: str, price_id: str
    ) -> None:
        holder = (
            await conn.execute(
                select(plans.c.key).where(
                    plans.c.operator_id == operator_id,
                    plans.c.stripe_price_id == price_id,
                    plans.c.key != key,
                )
            )
        ).scalar()
        if holder is not None:
            raise StripePriceLinked(price_id, holder)

    async def _raise_subscribers_alerts(
        self, conn: AsyncConnection, operator_id: int, old: Plan | None, plan: Plan, now: datetime
    ) -> None:
        """The alerts a change of the plan's limits raises for its subscribers."""
        limits = changed_limits(old, plan)
        if not limits:
            return
        query = _terms_query(operator_id).where(subscriptions.c.plan_key == plan.key)
        for row in (await conn.execute(query)).all():
            terms = _terms(row)
            assert terms.subscription is not None
            await raise_reached_alerts(conn, operator_id, terms.subscription, plan, limits, now)

    async def _require_kit(self, conn: AsyncConnection, operator_id: int, kit_id: str) -> None:
        found = (
            await conn.execute(
                select(account_kits.c.id).where(
                    account_kits.c.operator_id == operator_id, account_kits.c.id == kit_id
                )
            )
        ).first()
        if found is None:
            raise NotFound("account kit", kit_id)

    async def get_plan(self, operator_id: int, key: str) -> Plan:
        async def work(conn: AsyncConnection) -> Plan:
            row = (
                await conn.execute(
                    select(plans).where(plans.c.operator_id == operator_id, plans.c.key == key)
                )
            ).first()
            if row is None:
                raise NotFound("plan", key)
            return plan_from_row(row)

        return await self._read(work)

    async def list_plans(
        self, operator_id: int, after: str | None, limit: int, include_archived: bool
    ) -> Page[Plan]:
        query = select(plans).where(plans.c.operator_id == operator_id)
        if not include_archived:
            query = query.where(plans.c.archived.is_(False))
        if after is not None:
            query = query.where(plans.c.key > after)
        query = query.order_by(plans.c.key).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Page[Plan]:
            rows = (await conn.execute(query)).all()
            return _page([plan_from_row(r) for r in rows], limit, lambda p: p.key)

        return await self._read(work)

    async def archive_plan(self, operator_id: int, key: str, now: datetime) -> Plan:
        where = (plans.c.operator_id == operator_id, plans.c.key == key)

        async def work(conn: AsyncConnection) -> Plan:
            await conn.execute(
                update(plans)
                .where(*where, plans.c.archived.is_(False))
                .values(archived=True, updated_at=to_micros(now))
            )
            await self._bump_terms_version(conn, operator_id)
            row = (await conn.execute(select(plans).where(*where))).first()
            if row is None:
                raise NotFound("plan", key)
            return plan_from_row(row)

        return await self._write(work)

    # -- subscriptions ------------------------------------------------------

    async def set_subscription(
        self,
        operator_id: int,
        tenant_id: str,
        plan_key: str,
        status: SubscriptionStatus,
        stripe_customer_id: str | None,
        stripe_subscription_id: str | None,
        cycle: BillingCycle | None,
        assign_kit: bool,
        now: datetime,
    ) -> TenantTerms:
        """Create or replace the tenant's subscription; `cycle` None keeps
        the subscription's cycle (none for a new one)."""
        where = (subscriptions.c.operator_id == operator_id, subscriptions.c.tenant_id == tenant_id)
        current_query = _terms_query(operator_id).where(subscriptions.c.tenant_id == tenant_id)
        if self._postgres:
            current_query = current_query.with_for_update(of=subscriptions)

        async def work(conn: AsyncConnection) -> TenantTerms:
            plan = await self._plan_in(conn, operator_id, plan_key)
            # Concurrent first calls for one tenant: the ones whose insert
            # finds the row a competitor committed meanwhile update it.
            for _ in range(_FIRST_WRITE_ATTEMPTS):
                found = (await conn.execute(current_query)).first()
                current = _terms(found) if found is not None else None
                values = _subscription_values(plan, current, status, cycle, assign_kit, now)
                values |= {
                    "stripe_customer_id": stripe_customer_id,
                    "stripe_subscription_id": stripe_subscription_id,
                }
                if current is not None:
                    await conn.execute(update(subscriptions).where(*where).values(**values))
                    break
                inserted = await conn.execute(
                    self._insert(subscriptions)
                    .values(
                        operator_id=operator_id,
                        tenant_id=tenant_id,
                        created_at=to_micros(now),
                        **values,
                    )
                    .on_conflict_do_nothing(index_elements=["operator_id", "tenant_id"])
                    .returning(subscriptions.c.tenant_id)
                )
                if inserted.first() is not None:
                    break
            else:
                raise StorageUnavailable("the subscription kept changing; try again")
            await self._bump_terms_version(conn, operator_id)
            terms = _terms((await conn.execute(current_query)).one())
            assert terms.subscription is not None
            old_plan = current.plan if current is not None and _enforces(current) else None
            await raise_reached_alerts(
                conn, operator_id, terms.subscription, plan, changed_limits(old_plan, plan), now
            )
            return terms

        return await self._write(work)

    async def _plan_in(self, conn: AsyncConnection, operator_id: int, key: str) -> Plan:
        query = select(plans).where(plans.c.operator_id == operator_id, plans.c.key == key)
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("plan", key)
        return plan_from_row(row)

    async def get_terms(self, operator_id: int, tenant_id: str) -> TenantTerms:
        """The tenant's subscription, plan and kit, in one query."""
        query = _terms_query(operator_id).where(subscriptions.c.tenant_id == tenant_id)

        async def work(conn: AsyncConnection) -> TenantTerms:
            row = (await conn.execute(query)).first()
            return _terms(row) if row is not None else TenantTerms(None, None, None)

        return await self._read(work)

    async def list_subscriptions(
        self, operator_id: int, after: str | None, limit: int, plan_key: str | None
    ) -> Page[TenantTerms]:
        query = _terms_query(operator_id)
        if plan_key is not None:
            query = query.where(subscriptions.c.plan_key == plan_key)
        if after is not None:
            query = query.where(subscriptions.c.tenant_id > after)
        query = query.order_by(subscriptions.c.tenant_id).limit(limit + 1)

        async def work(conn: AsyncConnection) -> Page[TenantTerms]:
            rows = (await conn.execute(query)).all()
            return _page(
                [_terms(r) for r in rows],
                limit,
                lambda t: t.subscription.tenant_id if t.subscription else "",
            )

        return await self._read(work)

    # -- usage --------------------------------------------------------------

    async def usage_by_primitive(
        self, operator_id: int, tenant_id: str, window: Window
    ) -> dict[str, int]:
        """Usage of every primitive the tenant used in `window`."""
        start, end = to_micros(window.start), to_micros(window.end)

        async def work(conn: AsyncConnection) -> dict[str, int]:
            rows = await conn.execute(
                select(usage_events.c.primitive, func.sum(usage_events.c.quantity))
                .where(
                    usage_events.c.operator_id == operator_id,
                    usage_events.c.tenant_id == tenant_id,
                    usage_events.c.occurred_at >= start,
                    usage_events.c.occurred_at < end,
                    usage_events.c.refunded_at.is_(None),
                )
                .group_by(usage_events.c.primitive)
            )
            return {primitive: int(total) for primitive, total in rows}

        return await self._read(work)


def _subscription_values(
    plan: Plan,
    current: TenantTerms | None,
    status: SubscriptionStatus,
    cycle: BillingCycle | None,
    assign_kit: bool,
    now: datetime,
) -> dict[str, Any]:
    """A subscription's new columns but its Stripe ids, from the request and
    the current subscription (None: a new one)."""
    sub = current.subscription if current is not None else None
    # An archived plan takes no new tenants, but a tenant already on it
    # keeps receiving its webhooks' updates.
    if plan.archived and (sub is None or sub.plan_key != plan.key):
        raise PlanArchived(plan.key)
    if cycle is None:  # kept across plan changes, as Stripe keeps it
        cycle = BillingCycle(
            sub.billing_cycle_anchor if sub else None, sub.current_period_end if sub else None
        )
    kept_kit = sub.account_kit_id if sub is not None else None
    return {
        "plan_key": plan.key,
        "status": status.value,
        "billing_cycle_anchor": None if cycle.anchor is None else to_micros(cycle.anchor),
        "current_period_end": None if cycle.period_end is None else to_micros(cycle.period_end),
        "account_kit_id": plan.account_kit_id if assign_kit else kept_kit,
        "updated_at": to_micros(now),
    }


def _enforces(terms: TenantTerms) -> bool:
    return terms.subscription is not None and terms.subscription.status.enforces_plan


def _terms_query(operator_id: int) -> Any:
    """subscriptions ⋈ plans ⟕ account_kits of one operator: a tenant's terms."""
    return (
        select(subscriptions, plans, account_kits)
        .select_from(subscriptions)
        .join(
            plans,
            and_(
                plans.c.operator_id == subscriptions.c.operator_id,
                plans.c.key == subscriptions.c.plan_key,
            ),
        )
        .outerjoin(
            account_kits,
            and_(
                account_kits.c.operator_id == subscriptions.c.operator_id,
                account_kits.c.id == subscriptions.c.account_kit_id,
            ),
        )
        .where(subscriptions.c.operator_id == operator_id)
    )


def _page(items: list[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    if len(items) > limit:
        return Page(items[:limit], cursor_of(items[limit - 1]))
    return Page(items, None)


def _terms(row: Row[Any]) -> TenantTerms:
    """A subscriptions ⋈ plans ⟕ account_kits row, split by table."""
    mapping = row._mapping
    sub = _Columns(mapping, subscriptions)
    plan = _Columns(mapping, plans)
    kit = _Columns(mapping, account_kits)
    return TenantTerms(
        subscription=subscription_from_row(sub),
        plan=plan_from_row(plan),
        kit=kit_from_row(kit) if mapping[account_kits.c.id] is not None else None,
    )


class _Columns:
    """Attribute access to one table's columns of a joined row."""

    def __init__(self, mapping: Any, table: Any) -> None:
        self._mapping = mapping
        self._table = table

    def __getattr__(self, name: str) -> Any:
        return self._mapping[self._table.c[name]]
