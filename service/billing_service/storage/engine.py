"""Engines for the two supported databases, with the settings each needs."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..database_urls import PostgresTarget, postgres_target, standby_message
from ..startup import CannotOpen

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL (or SQLite in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def make_room_for(url: str) -> None:
    """Create the SQLite file's directory (serve and migrate create the file)."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = f"{error.strerror}: {error.filename}" if error.strerror else error
        raise CannotOpen(f"cannot open the database: {reason}; {what_to_do(url, error)}") from None


def what_to_do(url: str, error: BaseException) -> str:
    """The usual fix when the database at `url` cannot be opened with `error`
    (a driver's error, or the OSError of a connection or a file)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        where = path.parent if path else "its directory"
        return (
            f"check that {where} is a directory this user may write in, or correct the path"
            " in BILLING_DATABASE_URL"
        )
    hosts = make_url(url).query.get("host", ())
    if isinstance(hosts, tuple) and len(hosts) > 1:  # none answered, or none took writes
        return (
            f"start PostgreSQL at one of {', '.join(hosts)}, with a primary among them,"
            " or correct the hosts in BILLING_DATABASE_URL"
        )
    if isinstance(error, OSError):  # refused, timed out, or no such host
        parsed = make_url(url)
        host = parsed.host or "localhost"
        address = f"[{host}]" if ":" in host else host
        return (
            f"start PostgreSQL at {address}:{parsed.port or 5432}, or correct the host and port"
            " in BILLING_DATABASE_URL"
        )
    return "check the user, password and database name in BILLING_DATABASE_URL"


def create_engines(url: str, pool_size: int = 10) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines.

    SQLite: the writer starts every transaction with BEGIN IMMEDIATE, taking the
    database's write lock up front, so that concurrent writers (in this process
    or another) queue on busy_timeout instead of failing on a lock upgrade; the
    reader uses plain deferred transactions, which WAL lets run beside a writer.
    PostgreSQL: one engine serves both.

    Statements' parameters are never logged nor put in errors' messages
    (hide_parameters): they hold emails, password hashes and mailed tokens.
    """
    if not is_sqlite(url):
        target = postgres_target(url)
        engine = create_async_engine(
            target.url,
            connect_args=pool_connect_args(target),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
        return engine, engine
    writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
    reader = _sqlite_engine(url, begin="BEGIN")
    return writer, reader


def pool_connect_args(target: PostgresTarget) -> dict[str, Any]:
    """The pool's connect arguments: asyncpg's options from the URL and,
    behind a transaction pooler, no statement cache in SQLAlchemy either, so
    that every statement is an unnamed one, parsed again in the transaction
    that runs it (asyncpg does so without its own cache)."""
    if target.pooled:
        return {**target.driver, "prepared_statement_cache_size": 0}
    return dict(target.driver)


async def require_writable(engine: AsyncEngine, url: str) -> None:
    """CannotOpen when the PostgreSQL `engine` reaches takes no writes (a
    standby, or a database set read-only): `migrate` and the administration
    commands would otherwise read, then fail or report success."""
    if is_sqlite(url):
        return
    from sqlalchemy import text

    from ..config import shown_database

    async with engine.connect() as conn:
        read_only = await conn.scalar(text("SHOW transaction_read_only"))
    if read_only == "on":
        raise CannotOpen(standby_message(shown_database(url)))


def _sqlite_engine(url: str, begin: str) -> AsyncEngine:
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine
