"""Usage to Stripe read from usage_events behind a cursor, not queued as an
outbox row per event

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Why (docs/design.md, "Usage to Stripe"): a row per event, claimed, settled
# and purged, was four writes for every event sent, and on SQLite the
# sender's writes held the one write lock the calls wait for. The sender now
# reads events past its cursor; the outbox keeps cancels, retries and
# failures.
#
# On PostgreSQL ids are drawn ahead in blocks, so id order is not commit
# order: each event of a meter sent to Stripe is stamped with its
# transaction's id, and the sender reads only below the oldest transaction
# still running (stripe/cursor.py). On SQLite the single writer makes
# id order commit order, and nothing is stamped.
_STAMP = """
CREATE FUNCTION stripe_meter_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM meters m
             WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
               AND m.stripe_event_name IS NOT NULL) THEN
    NEW.stripe_xact := pg_current_xact_id()::text::bigint;
  END IF;
  RETURN NEW;
END $$
"""
# A refund of an event the sender may have sent (read behind the cursor,
# recently) queues its cancel; the one of an event queued in the outbox
# (before this revision, or again after a failed send) stays as it was.
# Either cancel waits for its report (stripe/outbox.py).
_KEEP_MICROS = 2 * 86_400 * 1_000_000
_OUTBOX_HAS_REPORT = (
    "EXISTS (SELECT 1 FROM stripe_meter_outbox r WHERE r.event_id = OLD.id AND r.action = 'report')"
)
_QUEUE_CANCEL_OF_QUEUED = """
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT r.operator_id, r.event_id, 'cancel', r.event_name, NEW.refunded_at, 0
FROM stripe_meter_outbox r
WHERE r.event_id = OLD.id AND r.action = 'report';
"""
_QUEUE_CANCEL_OF_READ = f"""
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT NEW.operator_id, NEW.id, 'cancel', m.stripe_event_name, NEW.refunded_at, 0
FROM meters m
WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
  AND m.stripe_event_name IS NOT NULL
  AND {{read_by_cursor}}
  AND NEW.refunded_at - OLD.recorded_at < {_KEEP_MICROS}
  AND EXISTS (SELECT 1 FROM stripe_customers c
              WHERE c.operator_id = NEW.operator_id AND c.tenant_id = NEW.tenant_id)
  AND NOT {_OUTBOX_HAS_REPORT};
"""
_READ_BY_CURSOR = {
    "postgresql": "OLD.stripe_xact IS NOT NULL",
    "sqlite": "OLD.id > (SELECT read_after FROM stripe_meter_cursor WHERE id = 1)",
}
_REFUNDED = "OLD.refunded_at IS NULL AND NEW.refunded_at IS NOT NULL"
_OLD_QUEUE_REPORT = """
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT NEW.operator_id, NEW.id, 'report', m.stripe_event_name, NEW.recorded_at, 0
FROM meters m
WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
  AND m.stripe_event_name IS NOT NULL
  AND EXISTS (SELECT 1 FROM stripe_customers c
              WHERE c.operator_id = NEW.operator_id AND c.tenant_id = NEW.tenant_id);
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Not in batch mode: SQLite adds and drops a column in place, where a
    # copy of the table would lose its triggers.
    op.add_column("usage_events", sa.Column("stripe_xact", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_usage_events_stripe",
        "usage_events",
        ["stripe_xact", "id"],
        sqlite_where=sa.text("stripe_xact IS NOT NULL"),
        postgresql_where=sa.text("stripe_xact IS NOT NULL"),
    )
    op.create_table(
        "stripe_meter_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("xact", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("read_after", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_meter_cursor"),
    )
    # Events before this revision were queued by the old trigger, if at all.
    op.execute(
        "INSERT INTO stripe_meter_cursor (id, xact, event_id, read_after)"
        " SELECT 1, 0, COALESCE(MAX(id), 0), COALESCE(MAX(id), 0) FROM usage_events"
    )
    cancel = _QUEUE_CANCEL_OF_QUEUED + _QUEUE_CANCEL_OF_READ.format(
        read_by_cursor=_READ_BY_CURSOR[op.get_bind().dialect.name]
    )
    if postgres:
        op.execute("DROP TRIGGER stripe_outbox_on_insert ON usage_events")
        op.execute("DROP FUNCTION stripe_outbox_report()")
        op.execute(_STAMP)
        op.execute(
            "CREATE TRIGGER stripe_meter_stamp BEFORE INSERT ON usage_events"
            " FOR EACH ROW EXECUTE FUNCTION stripe_meter_stamp()"
        )
        op.execute(
            "CREATE OR REPLACE FUNCTION stripe_outbox_cancel() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {cancel} RETURN NULL; END $$"
        )
        return
    op.execute("DROP TRIGGER stripe_outbox_on_insert")
    op.execute("DROP TRIGGER stripe_outbox_on_refund")
    op.execute(
        "CREATE TRIGGER stripe_outbox_on_refund AFTER UPDATE OF refunded_at ON usage_events"
        f" WHEN {_REFUNDED} BEGIN {cancel} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER stripe_meter_stamp ON usage_events")
        op.execute("DROP FUNCTION stripe_meter_stamp()")
        op.execute(
            "CREATE OR REPLACE FUNCTION stripe_outbox_cancel() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {_QUEUE_CANCEL_OF_QUEUED} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE FUNCTION stripe_outbox_report() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_OLD_QUEUE_REPORT} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER stripe_outbox_on_insert AFTER INSERT ON usage_events"
            " FOR EACH ROW EXECUTE FUNCTION stripe_outbox_report()"
        )
    else:
        op.execute("DROP TRIGGER stripe_outbox_on_refund")
        op.execute(
            "CREATE TRIGGER stripe_outbox_on_refund AFTER UPDATE OF refunded_at ON usage_events"
            f" WHEN {_REFUNDED} BEGIN {_QUEUE_CANCEL_OF_QUEUED} END"
        )
        op.execute(
            "CREATE TRIGGER stripe_outbox_on_insert AFTER INSERT ON usage_events"
            f" BEGIN {_OLD_QUEUE_REPORT} END"
        )
    op.drop_table("stripe_meter_cursor")
    op.drop_index("ix_usage_events_stripe", "usage_events")
    op.drop_column("usage_events", "stripe_xact")
