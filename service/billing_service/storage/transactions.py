"""The storage classes' transactions (store.py, ledger.py)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..domain.errors import StorageUnavailable
from .postgres import CONNECTION_LOST, TERMS_LOCK
from .tables import operators

T = TypeVar("T")

# PostgreSQL SQLSTATEs after which a transaction is simply run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_MAX_ATTEMPTS = 5


class Transactions:
    """Short transactions on the writer and reader engines: retried on
    deadlock, storage failures translated to StorageUnavailable once, lost
    connections dropped from the pool."""

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader
        self._postgres = writer.dialect.name == "postgresql"

    @property
    def writer(self) -> AsyncEngine:
        return self._writer

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    # -- transactions -------------------------------------------------------

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in a write transaction, again on deadlock, translating
        database failures once."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                async with self._translate(), self._writer.begin() as conn:
                    return await _replacing_lost(conn, work)
            except DBAPIError as exc:
                if attempt == _MAX_ATTEMPTS or _sqlstate(exc) not in _RETRYABLE_SQLSTATES:
                    raise
        raise StorageUnavailable("storage kept conflicting; try again")

    async def _read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._translate(), self._reader.connect() as conn:
            return await _replacing_lost(conn, work)

    @asynccontextmanager
    async def _translate(self) -> AsyncIterator[None]:
        try:
            yield
        except (DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and _sqlstate(exc) in _RETRYABLE_SQLSTATES:
                raise
            if not _connection_lost(exc):
                raise
            raise StorageUnavailable(f"storage unavailable: {type(exc).__name__}") from exc

    async def _bump_terms_version(self, conn: AsyncConnection, operator_id: int) -> None:
        """Tell every replica's terms cache that this operator's terms changed.
        On PostgreSQL, first take the operator's terms lock exclusively: the
        change commits only once no metered transaction under the older
        terms is in flight, and none starts before it commits; the row's
        update then waits for the conditional statements in flight
        (metering/postgres/)."""
        if self._postgres:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:lock, :operator)"),
                {"lock": TERMS_LOCK, "operator": operator_id},
            )
        await conn.execute(
            update(operators)
            .where(operators.c.id == operator_id)
            .values(terms_version=operators.c.terms_version + 1)
        )

    def _insert(self, table: Any) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)


async def _replacing_lost(
    conn: AsyncConnection, work: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """`work(conn)`; a connection found lost is dropped from the pool at once,
    so that the next caller does not find it broken too."""
    try:
        return await work(conn)
    except (DBAPIError, OSError) as exc:
        if _connection_lost(exc) and not conn.invalidated:
            await conn.invalidate()
        raise


def _connection_lost(exc: Exception) -> bool:
    """Whether `exc` says the database or the connection to it is gone (or in
    a state no statement can use), rather than that a statement failed."""
    if isinstance(exc, OSError | OperationalError | InterfaceError):
        return True
    assert isinstance(exc, DBAPIError)
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return bool(exc.connection_invalidated) or isinstance(cause, CONNECTION_LOST)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
