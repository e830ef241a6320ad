"""Apply the Alembic migrations to a database, and check that one is migrated."""

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision`, in one transaction."""

    def run(connection: Any) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


class SchemaNotCurrent(Exception):
    """The database is behind the revision this code needs."""

    def __init__(self, current: str | None, head: str | None) -> None:
        state = "was never migrated" if current is None else f"is at revision {current}"
        super().__init__(
            f"the database {state}, this service needs revision {head}: "
            "run `billing-service migrate` (BILLING_DATABASE_URL names the database)"
        )


async def require_current(engine: AsyncEngine) -> None:
    """Refuse a database these migrations have not reached: never migrated,
    or at an older revision of ours (a request would fail on a missing table
    or column instead). A revision these migrations do not know is a newer
    one, which a rolling upgrade's first replica applies while older ones
    still serve: that is let through, with a warning."""
    current = await current_revision(engine)
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    if current == head:
        return
    known = {revision.revision for revision in script.walk_revisions()}
    if current is None or current in known:
        raise SchemaNotCurrent(current, head)
    log.warning("database revision %s is newer than this code's %s", current, head)
