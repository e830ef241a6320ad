"""The meter sender's cursor over usage_events: the events of meters sent to
Stripe are read from the ledger itself, past the cursor, rather than queued
as an outbox row each (docs/design.md, "Usage to Stripe").

One sender at a time holds the cursor (a lease on its row, renewed by every
advance). It reads a batch past the cursor, sends it, then advances the
cursor in one transaction with the outbox rows of whatever was not
delivered (due again later, or failed for good). A sender that dies holding
it loses nothing: the next holder reads from the same place, and a resend
is harmless (Stripe dedupes meter events by identifier).

The order read in must be commit order, or an event committed after the
cursor passed its place would be missed. On SQLite one writer at a time
assigns ids in its transaction: id order is commit order. On PostgreSQL ids
are drawn ahead in blocks, so each event is stamped with its transaction's
id (`stripe_xact`, a trigger) and read in (stripe_xact, id) order, only
below the oldest transaction still running: every transaction below it has
ended, so nothing can appear behind the cursor any more."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.instants import from_micros, to_micros
from ..storage.settling import MAX_ERROR
from ..storage.tables import stripe_meter_outbox
from ..storage.transactions import Transactions
from .model import OutboxAction, OutboxItem

_ROW = 1  # the cursor's one row


@dataclass(frozen=True, slots=True, order=True)
class Place:
    """Where the cursor is: every event at or before it was read. SQLite
    leaves xact at 0."""

    xact: int
    event_id: int


@dataclass(frozen=True, slots=True)
class CursorRead:
    """A batch read past `start`; the cursor goes to `end` once it is settled.
    `held`: the events of owners without a Stripe customer, not sent."""

    start: Place
    end: Place
    items: list[OutboxItem]
    held: list[OutboxItem] = field(default_factory=list)


@dataclass
class Unsent:
    """What became of the items a send did not deliver: due again (when,
    why), or failed for good (why)."""

    retries: list[tuple[OutboxItem, datetime, str]] = field(default_factory=list)
    failures: list[tuple[OutboxItem, str]] = field(default_factory=list)


_TAKE = text(
    "UPDATE stripe_meter_cursor SET holder = :holder, claimed_until = :until"
    " WHERE id = 1 AND (holder = :holder OR claimed_until IS NULL OR claimed_until <= :now)"
    " RETURNING xact, event_id"
)
_ADVANCE = text(
    "UPDATE stripe_meter_cursor SET xact = :xact, event_id = :event_id, claimed_until = :until"
    " WHERE id = 1 AND holder = :holder"
)
_RELEASE = text(
    "UPDATE stripe_meter_cursor SET holder = NULL, claimed_until = NULL"
    " WHERE id = 1 AND holder = :holder"
)
_COLUMNS = "e.id, e.operator_id, e.quantity, e.occurred_at, m.stripe_event_name, c.customer_id"
_JOINS = (
    " LEFT JOIN meters m ON m.operator_id = e.operator_id AND m.key = e.primitive"
    " LEFT JOIN stripe_customers c"
    " ON c.operator_id = e.operator_id AND c.tenant_id = e.tenant_id"
)
_HORIZON = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
_READ_POSTGRES = text(
    f"SELECT e.stripe_xact AS xact, {_COLUMNS} FROM usage_events e {_JOINS}"
    " WHERE e.stripe_xact IS NOT NULL AND (e.stripe_xact, e.id) > (:xact, :event_id)"
    " AND e.stripe_xact < :horizon"
    " ORDER BY e.stripe_xact, e.id LIMIT :limit"
)
_TOP = text("SELECT COALESCE(MAX(id), 0) FROM usage_events")
# CROSS JOIN keeps SQLite's plan on the id range: the events first, then
# their meter (only meters sent to Stripe) and customer.
_READ_SQLITE = text(
    f"SELECT 0 AS xact, {_COLUMNS} FROM usage_events e CROSS JOIN meters m"
    " LEFT JOIN stripe_customers c"
    " ON c.operator_id = e.operator_id AND c.tenant_id = e.tenant_id"
    " WHERE e.id > :event_id AND e.id <= :top"
    " AND m.operator_id = e.operator_id AND m.key = e.primitive"
    " AND m.stripe_event_name IS NOT NULL"
    " ORDER BY e.id LIMIT :limit"
)
# Events past the cursor that will be sent (their owner has a customer).
_PAST_POSTGRES = (
    "FROM usage_events e JOIN stripe_meter_cursor k ON k.id = 1"
    " JOIN stripe_customers c ON c.operator_id = e.operator_id AND c.tenant_id = e.tenant_id"
    " WHERE e.stripe_xact IS NOT NULL AND (e.stripe_xact, e.id) > (k.xact, k.event_id)"
)
_PAST_SQLITE = (
    "FROM usage_events e"
    " JOIN meters m ON m.operator_id = e.operator_id AND m.key = e.primitive"
    " JOIN stripe_customers c ON c.operator_id = e.operator_id AND c.tenant_id = e.tenant_id"
    " WHERE e.id > (SELECT event_id FROM stripe_meter_cursor WHERE id = 1)"
    " AND m.stripe_event_name IS NOT NULL"
)


class MeterCursor(Transactions):
    async def take(self, holder: str, now: datetime, lease: timedelta) -> Place | None:
        """Hold the cursor for `lease` (again, if `holder` holds it): where it
        is, or None while another sender holds it."""
        values = {"holder": holder, "now": to_micros(now), "until": to_micros(now + lease)}

        async def work(conn: AsyncConnection) -> Place | None:
            row = (await conn.execute(_TAKE, values)).first()
            return None if row is None else Place(row.xact, row.event_id)

        return await self._write(work)

    async def read(self, start: Place, limit: int) -> CursorRead:
        """Up to `limit` events of meters sent to Stripe past `start`, in
        commit order."""

        async def work(conn: AsyncConnection) -> CursorRead:
            if self._postgres:
                horizon = (await conn.execute(_HORIZON)).scalar_one()
                query, bound = _READ_POSTGRES, {"horizon": horizon}
            else:
                top = (await conn.execute(_TOP)).scalar_one()
                query, bound = _READ_SQLITE, {"top": top}
            values = {"xact": start.xact, "event_id": start.event_id, "limit": limit, **bound}
            rows = (await conn.execute(query, values)).all()
            # An event whose meter is no longer sent is passed over; one whose
            # owner has no customer (yet) is held until it has one.
            sent = [_item(row) for row in rows if row.stripe_event_name is not None]
            end = Place(rows[-1].xact, rows[-1].id) if rows else start
            if not self._postgres and len(rows) < limit:
                end = Place(0, bound["top"])  # nothing more up to top
            return CursorRead(
                start,
                end,
                [item for item in sent if item.customer_id is not None],
                [item for item in sent if item.customer_id is None],
            )

        return await self._read(work)

    async def advance(
        self, holder: str, read: CursorRead, unsent: Unsent, now: datetime, lease: timedelta
    ) -> bool:
        """Move the cursor past `read`, with the outbox rows of what was not
        delivered or is held, in one transaction; renew the lease. False (and
        nothing written) if another sender took the cursor meanwhile."""
        moved = {
            "holder": holder,
            "xact": read.end.xact,
            "event_id": read.end.event_id,
            "until": to_micros(now + lease),
        }
        rows = _outbox_rows(unsent, read.held, now)

        async def work(conn: AsyncConnection) -> bool:
            if (await conn.execute(_ADVANCE, moved)).rowcount != 1:
                return False
            if rows:
                await conn.execute(stripe_meter_outbox.insert(), rows)
            return True

        return await self._write(work)

    async def release(self, holder: str) -> None:
        await self._write(lambda conn: conn.execute(_RELEASE, {"holder": holder}))


def past_cursor(postgres: bool, operator_id: int | None) -> TextClause:
    """Count and oldest instant of the events past the cursor that will be
    sent (of one operator, or all): pending, beside the outbox's rows."""
    past = _PAST_POSTGRES if postgres else _PAST_SQLITE
    mine = "" if operator_id is None else " AND e.operator_id = :operator_id"
    query = text(f"SELECT count(*), min(e.recorded_at) {past}{mine}")
    return query if operator_id is None else query.bindparams(operator_id=operator_id)


def _item(row: Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=0,  # no outbox row
        operator_id=row.operator_id,
        event_id=row.id,
        action=OutboxAction.REPORT,
        event_name=row.stripe_event_name,
        attempts=1,  # this read is its first
        quantity=row.quantity,
        occurred_at=from_micros(row.occurred_at),
        customer_id=row.customer_id,
    )


def _outbox_rows(unsent: Unsent, held: list[OutboxItem], now: datetime) -> list[dict[str, object]]:
    """The outbox rows of a read batch's events not delivered: a retry is
    due again later, a failure is failed for good, a held event waits for
    its owner's customer."""

    def row(item: OutboxItem, error: str | None) -> dict[str, object]:
        return {
            "operator_id": item.operator_id,
            "event_id": item.event_id,
            "action": OutboxAction.REPORT.value,
            "event_name": item.event_name,
            "attempts": 1,
            "last_error": None if error is None else error[:MAX_ERROR],
            "due_at": to_micros(now),
            "failed_at": None,
            "held_at": None,
        }

    rows = [row(item, error) | {"due_at": to_micros(due)} for item, due, error in unsent.retries]
    rows += [row(item, error) | {"failed_at": to_micros(now)} for item, error in unsent.failures]
    rows += [row(item, None) | {"held_at": to_micros(now), "attempts": 0} for item in held]
    return rows
