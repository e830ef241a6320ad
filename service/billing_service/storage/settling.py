"""What became of rows an outbox's sender claimed (stripe/outbox.py for
Stripe's meter events, end_users/alerts.py for deliveries), as statements
run together in one transaction."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, update

from ..domain.instants import to_micros

MAX_ERROR = 500


@dataclass
class Settlement:
    """Rows delivered, due again later (id, when, why), failed for good (id, why)."""

    delivered: list[int] = field(default_factory=list)
    retries: list[tuple[int, datetime, str]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)


def settle_statements(
    table: Table, outcome: Settlement, now: datetime, **on_delivery: Any
) -> list[Any]:
    """The updates recording `outcome` on `table` (id, due_at, claimed_until,
    delivered_at, failed_at, last_error); `on_delivery` sets more columns of
    the rows delivered."""
    c = table.c
    statements: list[Any] = []
    if outcome.delivered:
        statements.append(
            update(table)
            .where(c.id.in_(outcome.delivered))
            .values(delivered_at=to_micros(now), claimed_until=None, last_error=None, **on_delivery)
        )
    for row_id, due, error in outcome.retries:
        statements.append(
            update(table)
            .where(c.id == row_id)
            .values(due_at=to_micros(due), claimed_until=None, last_error=error[:MAX_ERROR])
        )
    for row_id, error in outcome.failures:
        statements.append(
            update(table)
            .where(c.id == row_id)
            .values(failed_at=to_micros(now), claimed_until=None, last_error=error[:MAX_ERROR])
        )
    return statements
