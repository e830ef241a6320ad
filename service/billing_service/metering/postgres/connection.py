"""The metering core's own PostgreSQL connection, replaced at once when it
breaks (a terminated backend, a failover, a restart): the call that found
it broken is answered UNAVAILABLE and the next one connects afresh."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ...database_urls import postgres_target
from ...domain.errors import StorageUnavailable
from ...storage.postgres import CONNECTION_LOST
from ..backend import RetryBatch

# Transient conflicts between transactions: the transaction runs again.
CONFLICTS = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.exceptions.LockNotAvailableError,
)


class Connection:
    def __init__(self, url: str) -> None:
        self._connect_args = connect_args(url)
        self._conn: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, outside any transaction, for statements whose
        failures are translated: a conflict to RetryBatch, a lost connection
        (replaced) to StorageUnavailable."""
        conn = await self._connected()
        try:
            yield conn
        except CONFLICTS as error:
            raise RetryBatch() from error
        except CONNECTION_LOST as error:
            self._reset()
            raise StorageUnavailable(f"storage unavailable: {type(error).__name__}") from error

    async def _connected(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is not None and not conn.is_closed() and not conn.is_in_transaction():
            return conn
        # Never build on a transaction something left open (a cancelled
        # caller): start again on a new connection.
        self._reset()
        try:
            self._conn = await asyncpg.connect(**self._connect_args)
        except (*CONNECTION_LOST, asyncpg.PostgresError) as error:
            raise StorageUnavailable(f"storage unavailable: {type(error).__name__}") from error
        return self._conn

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def connect_args(url: str) -> dict[str, Any]:
    """asyncpg.connect's arguments for `url`, as SQLAlchemy derives them for
    the Store's connections (the host list, a Unix socket's `host`, and the
    driver's options typed by database_urls: `ssl`, statement_cache_size,
    target_session_attrs, ...), less SQLAlchemy's own options."""
    target = postgres_target(url)
    parsed = make_url(target.url)
    _, options = parsed.get_dialect()().create_connect_args(parsed)
    for sqlalchemy_only in (
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
        "async_creator_fn",
    ):
        options.pop(sqlalchemy_only, None)
    return {**options, **target.driver}
