"""the ledger: quantities in micro-units, meters, plan prices, daily
aggregates kept by triggers, credit grants

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIT = 1_000_000  # domain/quantities.py: quantities are stored in millionths
DAY = 86_400_000_000  # microseconds

# The aggregate row of an event: its owner, project ('' for none), primitive
# and UTC day. Shared by both engines' triggers and the backfill.
_KEY = (
    "operator_id = {e}.operator_id AND tenant_id = {e}.tenant_id"
    " AND project_id = COALESCE({e}.project_id, '') AND primitive = {e}.primitive"
    " AND day = {e}.occurred_at / " + str(DAY)
)
_ADD = f"""
INSERT INTO usage_daily (operator_id, tenant_id, project_id, primitive, day,
                         total, peak, last_value, last_at, last_id, events)
VALUES (NEW.operator_id, NEW.tenant_id, COALESCE(NEW.project_id, ''), NEW.primitive,
        NEW.occurred_at / {DAY}, NEW.quantity, NEW.quantity, NEW.quantity,
        NEW.occurred_at, NEW.id, 1)
ON CONFLICT (operator_id, tenant_id, project_id, primitive, day) DO UPDATE SET
    total = usage_daily.total + excluded.total,
    peak = CASE WHEN excluded.peak > usage_daily.peak THEN excluded.peak
                ELSE usage_daily.peak END,
    last_value = CASE WHEN (excluded.last_at, excluded.last_id)
                           > (usage_daily.last_at, usage_daily.last_id)
                      THEN excluded.last_value ELSE usage_daily.last_value END,
    last_id = CASE WHEN (excluded.last_at, excluded.last_id)
                        > (usage_daily.last_at, usage_daily.last_id)
                   THEN excluded.last_id ELSE usage_daily.last_id END,
    last_at = CASE WHEN excluded.last_at > usage_daily.last_at THEN excluded.last_at
                   ELSE usage_daily.last_at END,
    events = usage_daily.events + 1;
"""
# A refund takes the event out: the sum goes down, the peak and the last
# reading are found again among the day's remaining events (a refund is rare).
_SAME_DAY = (
    "FROM usage_events r WHERE r.operator_id = OLD.operator_id"
    " AND r.tenant_id = OLD.tenant_id AND r.primitive = OLD.primitive"
    " AND COALESCE(r.project_id, '') = COALESCE(OLD.project_id, '')"
    f" AND r.occurred_at >= usage_daily.day * {DAY}"
    f" AND r.occurred_at < (usage_daily.day + 1) * {DAY} AND r.refunded_at IS NULL"
)
_TAKE_BACK = f"""
UPDATE usage_daily SET
    total = total - OLD.quantity,
    events = events - 1,
    peak = COALESCE((SELECT MAX(r.quantity) {_SAME_DAY}), 0),
    (last_value, last_at, last_id) = (
        SELECT COALESCE(MAX(x.quantity), 0), COALESCE(MAX(x.occurred_at), -1),
               COALESCE(MAX(x.id), -1)
        FROM (SELECT r.quantity, r.occurred_at, r.id {_SAME_DAY}
              ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1) x)
WHERE {_KEY.format(e="OLD")};
"""
_REFUNDED = "OLD.refunded_at IS NULL AND NEW.refunded_at IS NOT NULL"


def upgrade() -> None:
    _scale_quantities()
    op.create_table(
        "meters",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("aggregation", sa.String(8), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "key", name="pk_meters"),
    )
    with op.batch_alter_table("plans") as batch_op:
        batch_op.add_column(sa.Column("prices", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("currency", sa.String(3), nullable=False, server_default="usd")
        )
    op.create_table(
        "usage_daily",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(210), nullable=False),
        sa.Column("project_id", sa.String(200), nullable=False),
        sa.Column("primitive", sa.String(63), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("peak", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "operator_id", "tenant_id", "project_id", "primitive", "day", name="pk_usage_daily"
        ),
    )
    op.create_index("ix_usage_daily_owner_day", "usage_daily", ["operator_id", "tenant_id", "day"])
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("tenant_id", sa.String(210), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("granted_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_credit_grants"),
        sa.UniqueConstraint(
            "operator_id", "idempotency_key", name="uq_credit_grants_operator_id_idempotency_key"
        ),
    )
    op.create_index("ix_credit_grants_owner", "credit_grants", ["operator_id", "tenant_id"])
    _create_triggers()
    _backfill_daily()


def _scale_quantities() -> None:
    op.execute(
        f"UPDATE usage_events SET quantity = quantity * {UNIT},"
        f" used_after = used_after * {UNIT}, quota_limit = quota_limit * {UNIT}"
    )
    op.execute(f"UPDATE usage_counters SET used = used * {UNIT}")


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION usage_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_ADD} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE FUNCTION usage_daily_take_back() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_TAKE_BACK} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER usage_daily_on_insert AFTER INSERT ON usage_events"
            " FOR EACH ROW EXECUTE FUNCTION usage_daily_add()"
        )
        op.execute(
            "CREATE TRIGGER usage_daily_on_refund AFTER UPDATE OF refunded_at ON usage_events"
            f" FOR EACH ROW WHEN ({_REFUNDED}) EXECUTE FUNCTION usage_daily_take_back()"
        )
        return
    op.execute(
        f"CREATE TRIGGER usage_daily_on_insert AFTER INSERT ON usage_events BEGIN {_ADD} END"
    )
    op.execute(
        "CREATE TRIGGER usage_daily_on_refund AFTER UPDATE OF refunded_at ON usage_events"
        f" WHEN {_REFUNDED} BEGIN {_TAKE_BACK} END"
    )


def _backfill_daily() -> None:
    """The aggregates of the events stored before this revision (none named
    a project)."""
    last = (
        "SELECT l.{col} FROM usage_events l WHERE l.refunded_at IS NULL"
        " AND l.operator_id = g.operator_id AND l.tenant_id = g.tenant_id"
        f" AND l.primitive = g.primitive AND l.occurred_at >= g.day * {DAY}"
        f" AND l.occurred_at < (g.day + 1) * {DAY}"
        " ORDER BY l.occurred_at DESC, l.id DESC LIMIT 1"
    )
    op.execute(
        "INSERT INTO usage_daily (operator_id, tenant_id, project_id, primitive, day,"
        " total, peak, last_value, last_at, last_id, events)"
        " SELECT g.operator_id, g.tenant_id, '', g.primitive, g.day, g.total, g.peak,"
        f" ({last.format(col='quantity')}), ({last.format(col='occurred_at')}),"
        f" ({last.format(col='id')}), g.events"
        " FROM (SELECT operator_id, tenant_id, primitive,"
        f" CAST(occurred_at / {DAY} AS INTEGER) AS day,"
        " SUM(quantity) AS total, MAX(quantity) AS peak, COUNT(*) AS events"
        " FROM usage_events WHERE refunded_at IS NULL"
        f" GROUP BY operator_id, tenant_id, primitive, CAST(occurred_at / {DAY} AS INTEGER)) g"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER usage_daily_on_refund ON usage_events")
        op.execute("DROP TRIGGER usage_daily_on_insert ON usage_events")
        op.execute("DROP FUNCTION usage_daily_take_back()")
        op.execute("DROP FUNCTION usage_daily_add()")
    else:
        op.execute("DROP TRIGGER usage_daily_on_refund")
        op.execute("DROP TRIGGER usage_daily_on_insert")
    op.drop_index("ix_credit_grants_owner", "credit_grants")
    op.drop_table("credit_grants")
    op.drop_index("ix_usage_daily_owner_day", "usage_daily")
    op.drop_table("usage_daily")
    with op.batch_alter_table("plans") as batch_op:
        batch_op.drop_column("currency")
        batch_op.drop_column("prices")
    op.drop_table("meters")
    op.execute(f"UPDATE usage_counters SET used = used / {UNIT}")
    op.execute(
        f"UPDATE usage_events SET quantity = quantity / {UNIT},"
        f" used_after = used_after / {UNIT}, quota_limit = quota_limit / {UNIT}"
    )
