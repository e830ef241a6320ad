"""The metering backend on PostgreSQL: asyncpg on one dedicated connection
per process; set-based statements over arrays, so that a batch costs the
same few round trips whatever its size (BEGIN with the metering lock, the
locking read, the write, COMMIT).

Under READ COMMITTED a statement that waits for a row lock re-reads the
locked rows at their newest version but every other table as of its start.
A writing transaction therefore first takes its operators' terms lock in
shared mode (an advisory lock that terms changes take exclusively, in
catalog/store.py), in the same round trip as BEGIN: once it holds that lock
no terms change can commit before it does, so the terms versions its next
statement reads stay the newest until it commits, however long it waits for
counter rows. (The conditional statement, alone in its transaction, locks
the operator's row instead: statements.CONDITIONAL_WRITE.)"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from ...domain.models import TenantTerms
from ...domain.usage_keys import UsageKey
from .. import sql
from ..backend import Transaction
from ..calls import EMPTY_COUNTER, CounterRow, EventRow, NewEvent, Quantity
from ..decide import threshold_marks
from .connection import Connection
from .statements import (
    CALL_EVENTS,
    CONDITIONAL_WRITE,
    COUNTERS_AND_VERSIONS,
    CREATE_COUNTERS,
    INSERT_EVENTS,
    MARK_REFUNDED,
    SUM_EVENTS,
    USED_IN_PERIOD,
    WRITE_COUNTERS,
    WRITE_EVENTS_AND_COUNTERS,
    begin_with_terms_lock,
)

T = TypeVar("T")
_ID_BLOCK = 512


class PostgresBackend:
    never_suspends = False

    def __init__(self, url: str) -> None:
        self._connection = Connection(url)
        self._ids: list[int] = []

    async def transaction(
        self,
        operator_ids: Sequence[int],
        write: bool,
        work: Callable[[Transaction], Awaitable[T]],
    ) -> T:
        async with self._connection.session() as conn:
            statements = _Statements(conn, self._ids)
            if not write:
                return await work(statements)
            # Plain statements rather than asyncpg's transaction manager, which
            # turns a transaction into a savepoint of any it still believes open.
            await conn.execute(begin_with_terms_lock(operator_ids))
            try:
                result = await work(statements)
            except BaseException:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            return result

    async def read_usage(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        async with self._connection.session() as conn:
            row = await conn.fetchrow(USED_IN_PERIOD, *key, start, end)
        return None if row is None else (row[0], int(row[1]))

    async def add_if_room(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        async with self._connection.session() as conn:
            (event_id,) = await _Statements(conn, self._ids).take_ids(1)
            values = sql.event_values(event)
            used = await conn.fetchval(
                CONDITIONAL_WRITE,
                event_id,
                *values[:7],
                *values[8:14],  # a call without idempotency key: no digest, alone
                version,
                enforce,
                *threshold_marks(event.quota_limit),
            )
        return None if used is None else (event_id, used)

    def add_if_room_now(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        raise NotImplementedError("PostgreSQL writes in a coroutine")

    def read_usage_now(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        raise NotImplementedError("PostgreSQL is read in a coroutine")

    async def close(self) -> None:
        await self._connection.close()


class _Statements:
    """The transaction's statements (Transaction), on the one connection."""

    def __init__(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        self._conn = conn
        self._ids = ids  # event ids drawn from the sequence, not used yet

    async def counters_and_versions(
        self, keys: Sequence[UsageKey], operator_ids: Sequence[int], lock: bool
    ) -> tuple[dict[UsageKey, CounterRow], dict[int, int]]:
        columns = (
            [k.operator_id for k in keys],
            [k.tenant_id for k in keys],
            [k.primitive for k in keys],
        )
        counters, versions = await self._read_counters(columns, operator_ids, lock)
        missing = [key for key in keys if key not in counters]
        if lock and missing:
            # Rows must exist to be locked: create the missing ones, empty,
            # then lock them too (a concurrent creator may have won).
            await self._conn.execute(
                CREATE_COUNTERS,
                [k.operator_id for k in missing],
                [k.tenant_id for k in missing],
                [k.primitive for k in missing],
            )
            counters, versions = await self._read_counters(columns, operator_ids, lock)
        return {key: counters.get(key, EMPTY_COUNTER) for key in keys}, versions

    async def _read_counters(
        self, columns: tuple[list[Any], ...], operator_ids: Sequence[int], lock: bool
    ) -> tuple[dict[UsageKey, CounterRow], dict[int, int]]:
        rows = await self._conn.fetch(COUNTERS_AND_VERSIONS[lock], *columns, operator_ids)
        counters: dict[UsageKey, CounterRow] = {}
        versions: dict[int, int] = {}
        for r in rows:
            if r["tenant_id"] is None:  # an operator's row: its version in `used`
                versions[r["operator_id"]] = r["used"]
            else:
                key = UsageKey(r["operator_id"], r["tenant_id"], r["primitive"])
                counters[key] = CounterRow(r["window_start"], r["window_end"], r["used"])
        return counters, versions

    async def load_terms(
        self, operator_id: int, tenant_ids: Sequence[str]
    ) -> dict[str, TenantTerms]:
        rows = await self._conn.fetch(
            f"{sql.TERMS} WHERE s.operator_id = $1 AND s.tenant_id = ANY($2::text[])",
            operator_id,
            tenant_ids,
        )
        return {row["s_tenant_id"]: sql.terms_from_row(row) for row in rows}

    async def find_events(
        self, operator_id: int, idempotency_keys: Sequence[str]
    ) -> dict[str, EventRow]:
        rows = await self._conn.fetch(
            f"{sql.EVENTS} WHERE operator_id = $1 AND idempotency_key = ANY($2::text[])",
            operator_id,
            idempotency_keys,
        )
        return {row["idempotency_key"]: sql.event_row(row) for row in rows}

    async def event(self, operator_id: int, event_id: int) -> EventRow | None:
        row = await self._conn.fetchrow(
            f"{sql.EVENTS} WHERE operator_id = $1 AND id = $2", operator_id, event_id
        )
        return None if row is None else sql.event_row(row)

    async def call_events(self, operator_id: int, call_event_id: int) -> list[EventRow]:
        rows = await self._conn.fetch(CALL_EVENTS, operator_id, call_event_id)
        return [sql.event_row(row) for row in rows]

    async def sum_events(self, key: UsageKey, start: int, end: int) -> Quantity:
        return int(await self._conn.fetchval(SUM_EVENTS, *key, start, end))

    async def write(
        self,
        events: Sequence[NewEvent],
        counters: Sequence[tuple[UsageKey, CounterRow]],
        one_request: bool = False,
    ) -> list[int | None]:
        counter_columns = (
            [k.operator_id for k, _ in counters],
            [k.tenant_id for k, _ in counters],
            [k.primitive for k, _ in counters],
            [c.start for _, c in counters],
            [c.end for _, c in counters],
            [c.used for _, c in counters],
        )
        if not events:
            await self._conn.execute(WRITE_COUNTERS, *counter_columns)
            return []
        ids = await self.take_ids(len(events))
        first = ids[0] if one_request else None
        values = list(zip(*(sql.event_values(e, first) for e in events), strict=True))
        if counters:
            rows = await self._conn.fetch(WRITE_EVENTS_AND_COUNTERS, ids, *values, *counter_columns)
        else:
            rows = await self._conn.fetch(INSERT_EVENTS, ids, *values)
        inserted = {row["id"] for row in rows}
        return [i if i in inserted else None for i in ids]

    async def mark_refunded(self, operator_id: int, event_id: int, now: int) -> bool:
        return await self._conn.fetchval(MARK_REFUNDED, operator_id, event_id, now) is not None

    async def take_ids(self, count: int) -> list[int]:
        """Event ids, drawn before inserting so that each event's id is known
        even when a taken idempotency key skips its row; a block at a time, so
        that most batches need no round trip for them (a stopped process
        leaves gaps, which ids may have)."""
        while len(self._ids) < count:
            block = max(count - len(self._ids), _ID_BLOCK)
            rows = await self._conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('usage_events', 'id')) "
                "FROM generate_series(1, $1)",
                block,
            )
            self._ids.extend(row[0] for row in rows)
        taken = self._ids[:count]
        del self._ids[:count]
        return taken
