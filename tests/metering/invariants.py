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


async def counters_off(database_url: str) -> list[tuple[object, ...]]:
    """The counters whose usage is not the sum of their period's events."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(COUNTERS_OFF))).all()
    finally:
        await engine.dispose()
    return [tuple(row) for row in rows if row.used != row.events]


async def counters_equal_events(database_url: str) -> bool:
    off = await counters_off(database_url)
    assert off == [], off
    return True
