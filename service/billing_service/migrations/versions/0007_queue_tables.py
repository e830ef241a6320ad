"""PostgreSQL: room on the outboxes' pages for updates in place, and
vacuum after a small share of their rows changed (queue tables)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every row of an outbox is claimed (a lease: claimed_until, attempts), then
# settled. A claim changes no indexed column, so with free room on its page
# PostgreSQL updates the row in place (a HOT update: no new index entries);
# full pages (the default fillfactor, 100) made every claim a new version in
# every index. Their dead versions are vacuumed soon, not after a fifth of
# the table has changed (the default scale factor).
_TABLES = ("stripe_meter_outbox", "deliveries")
_QUEUE = "fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02"
_DEFAULTS = "fillfactor, autovacuum_vacuum_scale_factor"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has neither setting
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET ({_QUEUE})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({_DEFAULTS})")
