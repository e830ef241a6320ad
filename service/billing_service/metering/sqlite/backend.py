"""The metering backend on SQLite: sqlite3 called inline on the event loop
(a statement takes microseconds; a thread hop would cost more), one
connection per process, BEGIN IMMEDIATE for writes: SQLite's write lock
serializes every writer, of every process, so that no lock of rows and no
metering lock are needed.

The busy handler is off (it would sleep on the loop): a busy database makes
the batch retry after an asynchronous pause instead (RetryBatch)."""

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ...domain.errors import StorageUnavailable
from ...domain.models import TenantTerms
from ...domain.usage_keys import UsageKey
from .. import sql
from ..backend import RetryBatch, Transaction
from ..calls import EMPTY_COUNTER, CounterRow, EventRow, NewEvent, Quantity
from ..decide import threshold_marks
from .checkpoints import WalCheckpointer
from .commits import CommitWatch, KeptReads

T = TypeVar("T")

_USED_IN_PERIOD = sql.numbered(sql.USED_IN_PERIOD, "?", 5)
_SUM_EVENTS = sql.numbered(sql.SUM_EVENTS, "?", 5)
_MARK_REFUNDED = sql.numbered(sql.MARK_REFUNDED, "?", 3)
_COUNTER = (
    "SELECT window_start, window_end, used FROM usage_counters "
    "WHERE operator_id = ? AND tenant_id = ? AND primitive = ?"
)
_INSERT_EVENT = (
    f"INSERT INTO usage_events ({sql.INSERT_CALL_COLUMNS}) "
    f"VALUES ({', '.join('?' * 16)}) ON CONFLICT DO NOTHING RETURNING id"
)
_CALL_EVENTS = sql.numbered(sql.CALL_EVENTS, "?", 2)
# A request's first event's id is known once it is inserted.
_LINK_FIRST_EVENT = "UPDATE usage_events SET call_event_id = id WHERE id = ?"
# One call written without the batch path, or nothing (router.py,
# CONDITIONAL): the counter's UPDATE matches only in the caller's period,
# at the caller's terms version and where decide.writes_at_once holds.
_CONDITIONAL_ADD = (
    "UPDATE usage_counters SET used = used + :quantity "
    "WHERE operator_id = :operator AND tenant_id = :tenant AND primitive = :primitive "
    "AND window_start = :start AND window_end = :end "
    f"AND {sql.writes_at_once('used', ':quantity', ':limit', ':enforce', (':m0', ':m1'))} "
    "AND EXISTS (SELECT 1 FROM operators WHERE id = :operator AND terms_version = :version) "
    "RETURNING used"
)
_UPSERT_COUNTER = (
    "INSERT INTO usage_counters (operator_id, tenant_id, primitive, window_start, window_end, used)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (operator_id, tenant_id, primitive) DO UPDATE SET"
    " window_start = excluded.window_start, window_end = excluded.window_end, used = excluded.used"
)


class SqliteBackend:
    never_suspends = True

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=0")
        # Checkpoints run in a thread of their own (checkpoints.py).
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = WalCheckpointer(path)
        self._statements = _Statements(self._conn)
        # A first read has SQLite open the database's shared memory (the -shm
        # file), whose header the watch reads through SQLite's descriptor.
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        watch = CommitWatch.open(path)
        self._kept: KeptReads[tuple[UsageKey, int, int], tuple[int, Quantity]] | None = None
        if watch is not None:
            self._kept = KeptReads(watch)

    async def transaction(
        self,
        operator_ids: Sequence[int],
        write: bool,
        work: Callable[[Transaction], Awaitable[T]],
    ) -> T:
        if not write:
            return await _translated(work, self._statements)
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise _failure(error) from error
        try:
            result = await _translated(work, self._statements)
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise _failure(error) from error
            raise
        return result

    async def add_if_room(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        return self.add_if_room_now(event, version, enforce)

    def add_if_room_now(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        call, conn = event.call, self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    _CONDITIONAL_ADD,
                    {
                        "quantity": call.quantity,
                        "operator": call.key.operator_id,
                        "tenant": call.key.tenant_id,
                        "primitive": call.key.primitive,
                        "start": event.window_start,
                        "end": event.window_end,
                        "limit": event.quota_limit,
                        "enforce": enforce,
                        "version": version,
                        **dict(zip(("m0", "m1"), threshold_marks(event.quota_limit), strict=True)),
                    },
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return None
                values = sql.event_values(replace(event, used_after=row[0]))
                (event_id,) = conn.execute(_INSERT_EVENT, values).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _failure(error) from error
        return event_id, row[0]

    async def read_usage(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        return self.read_usage_now(key, start, end)

    def read_usage_now(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        kept = self._kept if not self._conn.in_transaction else None
        if kept is not None:
            read = kept.get((key, start, end))
            if read is not None:
                return read
        read = self._read_usage(key, start, end)
        if kept is not None and read is not None:
            kept.keep((key, start, end), read)
        return read

    def _read_usage(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        try:
            row = self._conn.execute(
                _USED_IN_PERIOD, (key.operator_id, key.tenant_id, key.primitive, start, end)
            ).fetchone()
        except sqlite3.Error as error:
            raise _failure(error) from error
        return None if row is None else (row[0], int(row[1]))

    async def close(self) -> None:
        self._checkpointer.close()
        self._conn.close()


class _Statements:
    """The transaction's statements (Transaction), on the one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def counters_and_versions(
        self, keys: Sequence[UsageKey], operator_ids: Sequence[int], lock: bool
    ) -> tuple[dict[UsageKey, CounterRow], dict[int, int]]:
        counters: dict[UsageKey, CounterRow] = {}
        for key in keys:
            row = self._conn.execute(_COUNTER, key).fetchone()
            counters[key] = CounterRow(row[0], row[1], row[2]) if row else EMPTY_COUNTER
        rows = self._conn.execute(
            f"SELECT id, terms_version FROM operators WHERE id IN ({_marks(operator_ids)})",
            tuple(operator_ids),
        )
        return counters, {row[0]: row[1] for row in rows}

    async def load_terms(
        self, operator_id: int, tenant_ids: Sequence[str]
    ) -> dict[str, TenantTerms]:
        rows = self._conn.execute(
            f"{sql.TERMS} WHERE s.operator_id = ? AND s.tenant_id IN ({_marks(tenant_ids)})",
            (operator_id, *tenant_ids),
        )
        return {row["s_tenant_id"]: sql.terms_from_row(row) for row in rows}

    async def find_events(
        self, operator_id: int, idempotency_keys: Sequence[str]
    ) -> dict[str, EventRow]:
        rows = self._conn.execute(
            f"{sql.EVENTS} WHERE operator_id = ?"
            f" AND idempotency_key IN ({_marks(idempotency_keys)})",
            (operator_id, *idempotency_keys),
        )
        return {row["idempotency_key"]: sql.event_row(row) for row in rows}

    async def event(self, operator_id: int, event_id: int) -> EventRow | None:
        row = self._conn.execute(
            f"{sql.EVENTS} WHERE operator_id = ? AND id = ?", (operator_id, event_id)
        ).fetchone()
        return None if row is None else sql.event_row(row)

    async def call_events(self, operator_id: int, call_event_id: int) -> list[EventRow]:
        rows = self._conn.execute(_CALL_EVENTS, (operator_id, call_event_id))
        return [sql.event_row(row) for row in rows]

    async def sum_events(self, key: UsageKey, start: int, end: int) -> Quantity:
        row = self._conn.execute(_SUM_EVENTS, (*key, start, end)).fetchone()
        return int(row[0])

    async def write(
        self,
        events: Sequence[NewEvent],
        counters: Sequence[tuple[UsageKey, CounterRow]],
        one_request: bool = False,
    ) -> list[int | None]:
        ids: list[int | None] = []
        for event in events:
            first = ids[0] if one_request and ids else None
            row = self._conn.execute(_INSERT_EVENT, sql.event_values(event, first)).fetchone()
            ids.append(row[0] if row else None)
        if one_request and ids and ids[0] is not None:
            self._conn.execute(_LINK_FIRST_EVENT, (ids[0],))
        self._conn.executemany(
            _UPSERT_COUNTER, [(*key, row.start, row.end, row.used) for key, row in counters]
        )
        return ids

    async def mark_refunded(self, operator_id: int, event_id: int, now: int) -> bool:
        return (
            self._conn.execute(_MARK_REFUNDED, (operator_id, event_id, now)).fetchone() is not None
        )


async def _translated(work: Callable[[Transaction], Awaitable[T]], tx: Transaction) -> T:
    try:
        return await work(tx)
    except sqlite3.Error as error:
        raise _failure(error) from error


def _failure(error: sqlite3.Error) -> Exception:
    message = str(error)
    if "locked" in message or "busy" in message:
        return RetryBatch()
    return StorageUnavailable(f"storage unavailable: {type(error).__name__}")


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
