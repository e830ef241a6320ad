"""The Alembic migrations, from an empty database, on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_service.storage.engine import create_engines
from billing_service.storage.migrate import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from billing_service.storage.schema import metadata
from billing_service.storage.store import Store

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    writer, reader = create_engines(database_url)
    try:
        yield writer, reader
    finally:
        await writer.dispose()
        await reader.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_a_new_database_has_no_revision(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    writer, _ = engines

    assert await current_revision(writer) is None
    assert await table_names(writer) == set()


async def test_upgrade_from_empty_reaches_head_with_every_table(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    head = head_revision()
    assert head is not None

    await upgrade(writer)

    assert await current_revision(writer) == head
    assert await table_names(writer) == set(metadata.tables) | {"alembic_version"}


async def test_the_migrated_schema_matches_the_models(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    await upgrade(writer)

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with writer.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_upgrading_twice_is_harmless_and_keeps_data(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, reader = engines
    await upgrade(writer)
    store = Store(writer, reader)
    operator = await store.create_operator("acme", NOW)

    await upgrade(writer)

    assert await current_revision(writer) == head_revision()
    assert await store.get_operator("acme") == operator


async def test_only_a_current_or_newer_schema_is_served(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    with pytest.raises(SchemaNotCurrent, match="never migrated"):
        await require_current(writer)

    await upgrade(writer, "0001")
    with pytest.raises(SchemaNotCurrent, match="is at revision 0001"):
        await require_current(writer)

    await upgrade(writer)
    await require_current(writer)

    # A revision this code does not know is a newer release's, applied
    # first in a rolling upgrade: older replicas keep serving.
    async with writer.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    await require_current(writer)
