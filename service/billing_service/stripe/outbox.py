"""The outbox of meter events for Stripe: refunds' cancels (a trigger,
migration 0008), reports the cursor's sender could not deliver at once
(stripe/cursor.py), reports queued before the cursor, and reports
held until their owner has a Stripe customer. Senders claim due rows for a
lease, then mark each delivered, due again later, or failed for good."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    and_,
    delete,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import from_micros, to_micros
from ..storage.settling import Settlement, settle_statements
from ..storage.tables import (
    stripe_customers,
    stripe_meter_cursor,
    stripe_meter_outbox,
    usage_events,
)
from ..storage.transactions import Transactions
from .cursor import past_cursor
from .model import (
    FailedDelivery,
    OutboxAction,
    OutboxItem,
    OutboxStatus,
    meter_event_identifier,
)

MAX_FAILED_SHOWN = 100

_o = stripe_meter_outbox
_PENDING = (_o.c.delivered_at.is_(None), _o.c.failed_at.is_(None), _o.c.held_at.is_(None))
_HELD = (_o.c.held_at.is_not(None), _o.c.delivered_at.is_(None), _o.c.failed_at.is_(None))


class OutboxStore(Transactions):
    async def claim(self, now: datetime, lease: timedelta, limit: int) -> list[OutboxItem]:
        """Take up to `limit` due rows for `lease`, oldest first (see _claimable)."""
        due = (
            select(_o.c.id).where(*self._claimable(now)).order_by(_o.c.due_at, _o.c.id).limit(limit)
        )
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(_o)
            .where(_o.c.id.in_(due.scalar_subquery()))
            .values(claimed_until=to_micros(now + lease), attempts=_o.c.attempts + 1)
            .returning(_o.c.id)
        )

        async def work(conn: AsyncConnection) -> list[OutboxItem]:
            ids = [row.id for row in (await conn.execute(claim)).all()]
            if not ids:
                return []
            details = (
                select(
                    _o,
                    usage_events.c.quantity,
                    usage_events.c.occurred_at,
                    stripe_customers.c.customer_id,
                    _received_by_stripe(),
                    _report_failed(),
                )
                .join(usage_events, usage_events.c.id == _o.c.event_id)
                .outerjoin(
                    stripe_customers,
                    and_(
                        stripe_customers.c.operator_id == usage_events.c.operator_id,
                        stripe_customers.c.tenant_id == usage_events.c.tenant_id,
                    ),
                )
                .where(_o.c.id.in_(ids))
                .order_by(_o.c.id)
            )
            return [_item(row) for row in (await conn.execute(details)).all()]

        return await self._write(work)

    def _claimable(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        """Rows a claim takes: pending, due, not held by another sender; a
        cancel once its meter event is read by the cursor and its report (if
        queued here) is delivered or failed."""
        report = _o.alias("report")
        report_pending = exists().where(
            report.c.event_id == _o.c.event_id,
            report.c.action == OutboxAction.REPORT.value,
            report.c.delivered_at.is_(None),
            report.c.failed_at.is_(None),
        )
        return (
            *_PENDING,
            _o.c.due_at <= to_micros(now),
            (_o.c.claimed_until.is_(None)) | (_o.c.claimed_until <= to_micros(now)),
            (_o.c.action == OutboxAction.REPORT.value)
            | (~report_pending & ~self._unread_by_cursor()),
        )

    def _unread_by_cursor(self) -> ColumnElement[bool]:
        """The row's event is past the meter sender's cursor."""
        k = stripe_meter_cursor
        if not self._postgres:
            return _o.c.event_id > select(k.c.event_id).where(k.c.id == 1).scalar_subquery()
        e = usage_events
        return exists().where(
            k.c.id == 1,
            e.c.id == _o.c.event_id,
            e.c.stripe_xact.is_not(None),
            tuple_(e.c.stripe_xact, e.c.id) > tuple_(k.c.xact, k.c.event_id),
        )

    async def any_due(self, now: datetime) -> bool:
        """Whether a claim would take anything (a read: a claim is a write)."""
        query = select(_o.c.id).where(*self._claimable(now)).limit(1)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(query)).first() is not None

        return await self._read(work)

    async def settle(self, outcome: Settlement, now: datetime) -> None:
        """Record what became of a batch, in one transaction."""
        statements = settle_statements(_o, outcome, now)
        if not statements:
            return

        async def work(conn: AsyncConnection) -> None:
            for statement in statements:
                await conn.execute(statement)

        await self._write(work)

    async def purge_delivered(self, before: datetime) -> None:
        """Forget rows delivered before `before`, past Stripe's cancel
        window: a refund after that fails (the operator credits it)."""
        statement = delete(_o).where(_o.c.delivered_at < to_micros(before))
        await self._write(lambda conn: conn.execute(statement))

    async def pending_total(self) -> int:
        """Every operator's pending rows and events past the cursor (the
        metrics' gauge)."""
        query = select(func.count()).where(*_PENDING)
        unread = past_cursor(self._postgres, None)

        async def work(conn: AsyncConnection) -> int:
            queued = (await conn.execute(query)).scalar_one()
            return int(queued) + int((await conn.execute(unread)).one()[0])

        return await self._read(work)

    async def status(self, operator_id: int) -> OutboxStatus:
        pending = select(func.count(), func.min(_o.c.due_at)).where(
            _o.c.operator_id == operator_id, *_PENDING
        )
        held = select(func.count()).where(_o.c.operator_id == operator_id, *_HELD)
        failed = (
            select(_o.c.event_id, _o.c.action, _o.c.last_error)
            .where(_o.c.operator_id == operator_id, _o.c.failed_at.is_not(None))
            .order_by(_o.c.failed_at.desc(), _o.c.id.desc())
            .limit(MAX_FAILED_SHOWN)
        )

        unread = past_cursor(self._postgres, operator_id)

        async def work(conn: AsyncConnection) -> OutboxStatus:
            count, oldest = (await conn.execute(pending)).one()
            unread_count, unread_oldest = (await conn.execute(unread)).one()
            oldest = min((o for o in (oldest, unread_oldest) if o is not None), default=None)
            return OutboxStatus(
                pending=count + unread_count,
                held=(await conn.execute(held)).scalar_one(),
                oldest_pending=None if oldest is None else from_micros(oldest),
                failed=[
                    FailedDelivery(
                        meter_event_identifier(row.event_id),
                        OutboxAction(row.action),
                        row.last_error,
                    )
                    for row in (await conn.execute(failed)).all()
                ],
            )

        return await self._read(work)


def release_held(operator_id: int, owner_key: str, now: datetime) -> list[Executable]:
    """The statements that make the owner's held reports due, now that it
    has a Stripe customer (in the transaction linking it). A held event
    refunded meanwhile is not sent, nor is its cancel."""
    e = usage_events
    held_of_owner = (
        select(_o.c.event_id)
        .join(e, e.c.id == _o.c.event_id)
        .where(_o.c.operator_id == operator_id, *_HELD, e.c.tenant_id == owner_key)
    )
    refunded = held_of_owner.where(e.c.refunded_at.is_not(None))
    return [
        delete(_o).where(_o.c.event_id.in_(refunded.scalar_subquery())),
        update(_o)
        .where(_o.c.event_id.in_(held_of_owner.scalar_subquery()), _o.c.held_at.is_not(None))
        .values(held_at=None, due_at=to_micros(now)),
    ]


def _received_by_stripe() -> Any:
    """When Stripe received a cancel's meter event, at the earliest: its
    report's delivery here, or (sent by the cursor, within moments) its
    recording."""
    report = _o.alias("report")
    delivered = (
        select(func.max(report.c.delivered_at))
        .where(report.c.event_id == _o.c.event_id, report.c.action == OutboxAction.REPORT.value)
        .scalar_subquery()
    )
    return func.coalesce(delivered, usage_events.c.recorded_at).label("received_by_stripe")


def _report_failed() -> Any:
    """Whether a cancel's report failed here: Stripe has nothing to cancel."""
    report = _o.alias("report")
    failed = exists().where(
        report.c.event_id == _o.c.event_id,
        report.c.action == OutboxAction.REPORT.value,
        report.c.failed_at.is_not(None),
    )
    return failed.label("report_failed")


def _item(row: Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        operator_id=row.operator_id,
        event_id=row.event_id,
        action=OutboxAction(row.action),
        event_name=row.event_name,
        attempts=row.attempts,
        quantity=row.quantity,
        occurred_at=from_micros(row.occurred_at),
        customer_id=row.customer_id,
        received_by_stripe=from_micros(row.received_by_stripe),
        report_failed=bool(row.report_failed),
    )
