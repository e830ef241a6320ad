"""Logging as every process of the service sets it up: the command's own,
and each process `serve` spawns (a spawned process starts unconfigured)."""

import logging
import time

from pythonjsonlogger.json import JsonFormatter

from .call_context import RequestIdFilter
from .config import Settings


def configure_logging(settings: Settings) -> None:
    """Log to stderr at BILLING_LOG_LEVEL, as text or one JSON object per
    line (BILLING_LOG_FORMAT)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(
            _JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    logging.getLogger("alembic.runtime.migration").addFilter(_without_alembic_chatter)
    # Alembic names each plugin it sets up, at INFO, when it loads: commands
    # load it after logging is configured (cli.py imports lazily).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The Stripe library logs every request at INFO; its failures reach our logs as ours.
    # So does httpx (the library's async calls, and the meter event stream).
    logging.getLogger("stripe").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_libraries()


class _JsonFormatter(JsonFormatter):
    """JSON lines whose `time` is RFC 3339 in UTC to the millisecond
    (2026-12-07T23:27:43.576Z), as log pipelines parse it; logging's own
    asctime has neither the T nor a zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def quiet_libraries() -> None:
    """Libraries whose DEBUG lines would show what must not be logged:
    aiosqlite logs every statement with its parameters (emails, password
    hashes, mailed tokens)."""
    logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _without_alembic_chatter(record: logging.LogRecord) -> bool:
    """Alembic says at INFO which dialect it found whenever it looks at a
    database, which every command does (two lines, each time): keep what it
    does to the database (`Running upgrade ...`), not that."""
    return not record.getMessage().startswith(("Context impl ", "Will assume "))
