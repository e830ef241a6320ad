"""Usage of owners without a Stripe customer held in the meter outbox, and
every refund of usage sent to Stripe queued as a cancel

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Why (docs/design.md, "Usage to Stripe"): the cursor passed over the usage
# of an owner without a Stripe customer, which Stripe then never invoiced.
# Such usage is now an outbox report row `held_at` the read, made due when
# the owner's customer is linked. The usage passed over before this revision
# (read by the cursor, not refunded, never queued) is held here too.
_HOLD_PASSED_OVER = """
INSERT INTO stripe_meter_outbox
  (operator_id, event_id, action, event_name, due_at, attempts, held_at)
SELECT e.operator_id, e.id, 'report', m.stripe_event_name, e.recorded_at, 0, e.recorded_at
FROM usage_events e
JOIN meters m ON m.operator_id = e.operator_id AND m.key = e.primitive
JOIN stripe_meter_cursor k ON k.id = 1
WHERE m.stripe_event_name IS NOT NULL AND e.refunded_at IS NULL
  AND {read_by_cursor}
  AND NOT EXISTS (SELECT 1 FROM stripe_customers c
                  WHERE c.operator_id = e.operator_id AND c.tenant_id = e.tenant_id)
  AND NOT EXISTS (SELECT 1 FROM stripe_meter_outbox o WHERE o.event_id = e.id)
"""
_PASSED_BY_CURSOR = {
    "postgresql": "e.stripe_xact IS NOT NULL AND (e.stripe_xact, e.id) <= (k.xact, k.event_id)",
    "sqlite": "e.id > k.read_after AND e.id <= k.event_id",
}

# A refund queued a cancel only within two days of the event's recording,
# and nothing after: Stripe then billed usage the service had refunded.
# Every refund of an event sent to Stripe now queues its cancel; the sender
# sends it within Stripe's 24-hour window, and marks it failed (the operator
# credits it) past that window (stripe/meter_sender.py).
_QUEUE_CANCEL_OF_QUEUED = """
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT r.operator_id, r.event_id, 'cancel', r.event_name, NEW.refunded_at, 0
FROM stripe_meter_outbox r
WHERE r.event_id = OLD.id AND r.action = 'report';
"""
_OUTBOX_HAS_REPORT = (
    "EXISTS (SELECT 1 FROM stripe_meter_outbox r WHERE r.event_id = OLD.id AND r.action = 'report')"
)
_QUEUE_CANCEL_OF_READ = f"""
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT NEW.operator_id, NEW.id, 'cancel', m.stripe_event_name, NEW.refunded_at, 0
FROM meters m
WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
  AND m.stripe_event_name IS NOT NULL
  AND {{read_by_cursor}}
  AND {{age}}
  AND EXISTS (SELECT 1 FROM stripe_customers c
              WHERE c.operator_id = NEW.operator_id AND c.tenant_id = NEW.tenant_id)
  AND NOT {_OUTBOX_HAS_REPORT};
"""
_READ_BY_CURSOR = {
    "postgresql": "OLD.stripe_xact IS NOT NULL",
    "sqlite": "OLD.id > (SELECT read_after FROM stripe_meter_cursor WHERE id = 1)",
}
_TWO_DAYS = f"NEW.refunded_at - OLD.recorded_at < {2 * 86_400 * 1_000_000}"
_REFUNDED = "OLD.refunded_at IS NULL AND NEW.refunded_at IS NOT NULL"


def _cancel(dialect: str, age: str) -> str:
    read = _QUEUE_CANCEL_OF_READ.format(read_by_cursor=_READ_BY_CURSOR[dialect], age=age)
    return _QUEUE_CANCEL_OF_QUEUED + read


def _set_refund_trigger(cancel: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION stripe_outbox_cancel() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {cancel} RETURN NULL; END $$"
        )
        return
    op.execute("DROP TRIGGER stripe_outbox_on_refund")
    op.execute(
        "CREATE TRIGGER stripe_outbox_on_refund AFTER UPDATE OF refunded_at ON usage_events"
        f" WHEN {_REFUNDED} BEGIN {cancel} END"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Not in batch mode: SQLite adds a column in place, where a copy of the
    # table would lose its triggers.
    op.add_column("stripe_meter_outbox", sa.Column("held_at", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_stripe_meter_outbox_held",
        "stripe_meter_outbox",
        ["operator_id"],
        sqlite_where=sa.text("held_at IS NOT NULL"),
        postgresql_where=sa.text("held_at IS NOT NULL"),
    )
    op.execute(_HOLD_PASSED_OVER.format(read_by_cursor=_PASSED_BY_CURSOR[dialect]))
    _set_refund_trigger(_cancel(dialect, "TRUE" if dialect == "postgresql" else "1"))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _set_refund_trigger(_cancel(dialect, _TWO_DAYS))
    op.execute("DELETE FROM stripe_meter_outbox WHERE held_at IS NOT NULL")
    op.drop_index("ix_stripe_meter_outbox_held", "stripe_meter_outbox")
    op.drop_column("stripe_meter_outbox", "held_at")
