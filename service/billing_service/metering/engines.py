"""The backend for a database URL: the one place that knows both engines."""

from sqlalchemy.engine import make_url

from .backend import MeteringBackend
from .postgres.backend import PostgresBackend
from .sqlite.backend import SqliteBackend


def open_backend(url: str) -> MeteringBackend:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("the SQLite database must be a file (shared by connections)")
        return SqliteBackend(parsed.database)
    return PostgresBackend(url)
