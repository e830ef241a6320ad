"""A migrated database's triggers on usage_events are metering/triggers.py's,
on both engines: the module is the current truth of the migrations' history."""

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from billing_service.metering.triggers import triggers_of


def _flat(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def _condition(sql: str) -> str:
    """A WHEN condition as either engine writes it: no parentheses, lower case."""
    return _flat(re.sub(r"[()]", "", sql)).lower()


async def _sqlite_triggers(database_url: str) -> dict[str, str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master"
                    " WHERE type = 'trigger' AND tbl_name = 'usage_events'"
                )
            )
            return {name: sql for name, sql in rows}
    finally:
        await engine.dispose()


async def _postgres_triggers(database_url: str) -> dict[str, tuple[str, str]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT t.tgname, pg_get_triggerdef(t.oid), p.prosrc FROM pg_trigger t"
                    " JOIN pg_proc p ON p.oid = t.tgfoid"
                    " WHERE t.tgrelid = 'usage_events'::regclass AND NOT t.tgisinternal"
                )
            )
            return {name: (definition, body) for name, definition, body in rows}
    finally:
        await engine.dispose()


async def test_a_migrated_database_has_the_modules_triggers(
    backend: str, database_url: str
) -> None:
    expected = triggers_of(backend)
    if backend == "sqlite":
        found = await _sqlite_triggers(database_url)
        assert set(found) == set(expected)
        for name, trigger in expected.items():
            when = f" WHEN {trigger.when}" if trigger.when else ""
            statements = trigger.statements["sqlite"]
            assert _flat(found[name]) == _flat(
                f"CREATE TRIGGER {name} {trigger.fires} ON usage_events{when}"
                f" BEGIN {statements} END"
            ), name
        return
    found_pg = await _postgres_triggers(database_url)
    assert set(found_pg) == set(expected)
    for name, trigger in expected.items():
        definition, body = found_pg[name]
        head = f"CREATE TRIGGER {name} {trigger.fires} ON public.usage_events FOR EACH ROW"
        assert _flat(definition).startswith(head), name
        assert _flat(definition).endswith(f"EXECUTE FUNCTION {trigger.function}()"), name
        if trigger.when:
            shown = definition.split(" WHEN ", 1)[1].rsplit(" EXECUTE ", 1)[0]
            assert _condition(shown) == _condition(trigger.when), name
        statements = trigger.statements["postgres"]
        if trigger.fires.startswith("AFTER"):  # a BEFORE one's body is whole, RETURN NEW
            statements = f"BEGIN {statements} RETURN NULL; END"
        assert _flat(body) == _flat(statements), name
