"""What must hold of the stored usage whatever happened: read with plain SQL."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

COUNTERS_OFF = """
SELECT c.operator_id, c.tenant_id, c.primitive, c.used,
       (SELECT COALESCE(SUM(e.quantity), 0) FROM usage_events e
        WHERE e.operator_id = c.operator_id AND e.tenant_id = c.tenant_id
          AND e.primitive = c.primitive AND e.refunded_at IS NULL
          AND e.occurred_at >= c.window_start AND e.occurred_at < c.window_end) AS events
FROM usage_counters c
"""


# The daily aggregates as the events say they should be (migration 0004).
DAILY_FROM_EVENTS = """
SELECT operator_id, tenant_id, COALESCE(project_id, '') AS project_id, primitive,
       occurred_at / 86400000000 AS day, SUM(quantity) AS total, MAX(quantity) AS peak,
       COUNT(*) AS events
FROM usage_events WHERE refunded_at IS NULL
GROUP BY operator_id, tenant_id, COALESCE(project_id, ''), primitive, occurred_at / 86400000000
"""
DAILY = (
    "SELECT operator_id, tenant_id, project_id, primitive, day, total, peak, events"
    " FROM usage_daily WHERE events > 0"
)


async def counters_off(database_url: str) -> list[tuple[object, ...]]:
    """The counters whose usage is not the sum of their period's events, and
    the daily aggregates that differ from their day's events."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(COUNTERS_OFF))).all()
            expected = {tuple(row) for row in (await conn.execute(text(DAILY_FROM_EVENTS))).all()}
            kept = {tuple(row) for row in (await conn.execute(text(DAILY))).all()}
    finally:
        await engine.dispose()
    off: list[tuple[object, ...]] = [tuple(row) for row in rows if row.used != row.events]
    off += [("daily, expected", *row) for row in expected - kept]
    off += [("daily, kept", *row) for row in kept - expected]
    return off


async def counters_equal_events(database_url: str) -> bool:
    off = await counters_off(database_url)
    assert off == [], off
    return True
