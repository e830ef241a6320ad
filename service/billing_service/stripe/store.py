"""Storage of what the service keeps of the operators' Stripe accounts:
accounts, customers, payment methods, webhook events and the versions of
the objects they changed."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import from_micros, to_micros
from ..storage.tables import (
    plans,
    stripe_accounts,
    stripe_customers,
    stripe_events,
    stripe_object_versions,
    stripe_payment_methods,
)
from ..storage.transactions import Transactions
from .model import (
    ApiKeyRule,
    Customer,
    EventOutcome,
    SealedSecrets,
    StripeAccount,
    StripeEventRecord,
)
from .outbox import release_held

# A delivery's claim on a webhook event outlives its handler's Stripe calls
# (with their retries) by far; past it, the delivery is taken to have died.
CLAIM_LEASE = timedelta(minutes=5)


class PaymentsStore(Transactions):
    # -- accounts -----------------------------------------------------------

    async def put_account(
        self,
        operator_id: int,
        sealed: SealedSecrets,
        livemode: bool,
        rule: ApiKeyRule,
        now: datetime,
    ) -> StripeAccount:
        values = {
            "secret_key": sealed.secret_key,
            "webhook_secret": sealed.webhook_secret,
            "livemode": livemode,
            "api_key_rule": rule.value,
            "updated_at": to_micros(now),
        }

        async def work(conn: AsyncConnection) -> StripeAccount:
            await conn.execute(
                self._insert(stripe_accounts)
                .values(operator_id=operator_id, created_at=to_micros(now), **values)
                .on_conflict_do_update(index_elements=["operator_id"], set_=values)
            )
            row = (
                await conn.execute(
                    select(stripe_accounts).where(stripe_accounts.c.operator_id == operator_id)
                )
            ).one()
            return _account(row)

        return await self._write(work)

    async def get_account(self, operator_id: int) -> tuple[StripeAccount, SealedSecrets] | None:
        query = select(stripe_accounts).where(stripe_accounts.c.operator_id == operator_id)

        async def work(conn: AsyncConnection) -> tuple[StripeAccount, SealedSecrets] | None:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            return _account(row), SealedSecrets(row.secret_key, row.webhook_secret)

        return await self._read(work)

    # -- customers and payment methods ---------------------------------------

    async def customer_of(self, operator_id: int, owner_key: str) -> Customer | None:
        query = select(stripe_customers).where(
            stripe_customers.c.operator_id == operator_id,
            stripe_customers.c.tenant_id == owner_key,
        )
        return await self._read(lambda conn: _first_customer(conn, query))

    async def customer_by_id(self, operator_id: int, customer_id: str) -> Customer | None:
        query = select(stripe_customers).where(
            stripe_customers.c.operator_id == operator_id,
            stripe_customers.c.customer_id == customer_id,
        )
        return await self._read(lambda conn: _first_customer(conn, query))

    async def link_customer(
        self, operator_id: int, owner_key: str, customer_id: str, now: datetime
    ) -> tuple[Customer | None, bool]:
        """Link the owner to a Stripe customer unless it has one already:
        the owner's customer (None when the customer is another owner's and
        this one has none), and whether this call linked it."""

        async def work(conn: AsyncConnection) -> tuple[Customer | None, bool]:
            linked = (
                await conn.execute(
                    self._insert(stripe_customers)
                    .values(
                        operator_id=operator_id,
                        tenant_id=owner_key,
                        customer_id=customer_id,
                        created_at=to_micros(now),
                        updated_at=to_micros(now),
                    )
                    .on_conflict_do_nothing()
                    .returning(stripe_customers.c.tenant_id)
                )
            ).first() is not None
            if linked:
                for statement in release_held(operator_id, owner_key, now):
                    await conn.execute(statement)
            query = select(stripe_customers).where(
                stripe_customers.c.operator_id == operator_id,
                stripe_customers.c.tenant_id == owner_key,
            )
            return await _first_customer(conn, query), linked

        return await self._write(work)

    async def set_default_payment_method(
        self, operator_id: int, customer_id: str, payment_method: str | None, now: datetime
    ) -> None:
        statement = (
            update(stripe_customers)
            .where(
                stripe_customers.c.operator_id == operator_id,
                stripe_customers.c.customer_id == customer_id,
            )
            .values(default_payment_method=payment_method, updated_at=to_micros(now))
        )
        await self._write(lambda conn: conn.execute(statement))

    async def put_payment_method(
        self, operator_id: int, payment_method: str, customer_id: str | None, now: datetime
    ) -> None:
        values = {"customer_id": customer_id, "updated_at": to_micros(now)}
        statement = (
            self._insert(stripe_payment_methods)
            .values(operator_id=operator_id, payment_method_id=payment_method, **values)
            .on_conflict_do_update(index_elements=["operator_id", "payment_method_id"], set_=values)
        )
        await self._write(lambda conn: conn.execute(statement))

    async def has_payment_method(self, operator_id: int, customer: Customer) -> bool:
        if customer.default_payment_method:
            return True
        query = (
            select(stripe_payment_methods.c.payment_method_id)
            .where(
                stripe_payment_methods.c.operator_id == operator_id,
                stripe_payment_methods.c.customer_id == customer.customer_id,
            )
            .limit(1)
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(query)).first() is not None

        return await self._read(work)

    async def plan_for_price(self, operator_id: int, price_id: str) -> str | None:
        """The plan whose stripe_price_id is `price_id` (an unarchived one
        first)."""
        query = (
            select(plans.c.key)
            .where(plans.c.operator_id == operator_id, plans.c.stripe_price_id == price_id)
            .order_by(plans.c.archived, plans.c.key)
            .limit(1)
        )

        async def work(conn: AsyncConnection) -> str | None:
            return (await conn.execute(query)).scalar()

        return await self._read(work)

    # -- webhook events -----------------------------------------------------

    async def claim_event(
        self, operator_id: int, event_id: str, now: datetime
    ) -> StripeEventRecord | None:
        """Claim a webhook event for this delivery (None), unless another
        delivery received it first: then its record, being handled or
        handled. A claim older than CLAIM_LEASE is of a delivery that died
        mid-handler, and is taken over."""
        values = {
            "operator_id": operator_id,
            "event_id": event_id,
            "type": "",
            "outcome": EventOutcome.HANDLING.value,
            "detail": "",
            "created_at": to_micros(now),
            "received_at": to_micros(now),
        }
        insert = self._insert(stripe_events).values(**values)
        claim = insert.on_conflict_do_update(
            index_elements=["operator_id", "event_id"],
            set_={"received_at": to_micros(now)},
            where=(stripe_events.c.outcome == EventOutcome.HANDLING.value)
            & (stripe_events.c.received_at < to_micros(now - CLAIM_LEASE)),
        ).returning(stripe_events.c.event_id)
        stored = select(stripe_events).where(*_event_key(operator_id, event_id))

        async def work(conn: AsyncConnection) -> StripeEventRecord | None:
            if (await conn.execute(claim)).first() is not None:
                return None
            return _event((await conn.execute(stored)).one())

        return await self._write(work)

    async def release_event(self, operator_id: int, event_id: str, claimed_at: datetime) -> None:
        """Drop this delivery's claim, its handler having failed: the event
        is Stripe's to send again."""
        statement = delete(stripe_events).where(
            *_event_key(operator_id, event_id), *_claimed(claimed_at)
        )
        await self._write(lambda conn: conn.execute(statement))

    async def record_event(self, operator_id: int, record: StripeEventRecord) -> StripeEventRecord:
        """Store what a claimed event did (its claim is received_at): the
        record kept, another delivery's if it took the claim over."""
        statement = (
            update(stripe_events)
            .where(*_event_key(operator_id, record.event_id), *_claimed(record.received_at))
            .values(
                type=record.type,
                outcome=record.outcome.value,
                detail=record.detail[:500],
                created_at=to_micros(record.created_at),
            )
        )
        stored = select(stripe_events).where(*_event_key(operator_id, record.event_id))

        async def work(conn: AsyncConnection) -> StripeEventRecord:
            await conn.execute(statement)
            return _event((await conn.execute(stored)).one())

        return await self._write(work)

    async def list_events(
        self,
        operator_id: int,
        outcome: EventOutcome | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StripeEventRecord]:
        """Newest first; `after` is the (received_at, event_id) of the last
        event of the previous page."""
        query = select(stripe_events).where(stripe_events.c.operator_id == operator_id)
        if outcome is not None:
            query = query.where(stripe_events.c.outcome == outcome.value)
        if after is not None:
            query = query.where(
                tuple_(stripe_events.c.received_at, stripe_events.c.event_id) < tuple_(*after)
            )
        query = query.order_by(
            stripe_events.c.received_at.desc(), stripe_events.c.event_id.desc()
        ).limit(limit)

        async def work(conn: AsyncConnection) -> list[StripeEventRecord]:
            return [_event(row) for row in (await conn.execute(query)).all()]

        return await self._read(work)

    async def advance_object(self, operator_id: int, object_id: str, created: datetime) -> bool:
        """Note that an event created at `created` is applied to the object,
        unless a newer one was: whether it may be applied (not stale)."""
        table = stripe_object_versions
        statement = (
            self._insert(table)
            .values(operator_id=operator_id, object_id=object_id, event_created=to_micros(created))
            .on_conflict_do_update(
                index_elements=["operator_id", "object_id"],
                set_={"event_created": to_micros(created)},
                where=table.c.event_created <= to_micros(created),
            )
            .returning(table.c.object_id)
        )

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).first() is not None

        return await self._write(work)


async def _first_customer(conn: AsyncConnection, query: Any) -> Customer | None:
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Customer(row.tenant_id, row.customer_id, row.default_payment_method)


def _account(row: Row[Any]) -> StripeAccount:
    return StripeAccount(
        operator_id=row.operator_id,
        livemode=row.livemode,
        api_key_rule=ApiKeyRule(row.api_key_rule),
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
    )


def _event_key(operator_id: int, event_id: str) -> tuple[ColumnElement[bool], ...]:
    return stripe_events.c.operator_id == operator_id, stripe_events.c.event_id == event_id


def _claimed(at: datetime) -> tuple[ColumnElement[bool], ...]:
    """The claim a delivery made at `at`, still being handled."""
    return (
        stripe_events.c.outcome == EventOutcome.HANDLING.value,
        stripe_events.c.received_at == to_micros(at),
    )


def _event(row: Row[Any]) -> StripeEventRecord:
    return StripeEventRecord(
        event_id=row.event_id,
        type=row.type,
        outcome=EventOutcome(row.outcome),
        detail=row.detail,
        created_at=from_micros(row.created_at),
        received_at=from_micros(row.received_at),
    )
