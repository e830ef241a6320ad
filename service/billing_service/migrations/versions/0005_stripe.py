"""Stripe: connected accounts, customers, payment methods, webhook events,
and the outbox of meter events kept by triggers on usage_events

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = "delivered_at IS NULL AND failed_at IS NULL"

# A usage event of a meter with a Stripe event name, of an owner with a Stripe
# customer, is queued for the sender in the event's own transaction; the same
# statement on both engines.
_QUEUE_REPORT = """
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT NEW.operator_id, NEW.id, 'report', m.stripe_event_name, NEW.recorded_at, 0
FROM meters m
WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
  AND m.stripe_event_name IS NOT NULL
  AND EXISTS (SELECT 1 FROM stripe_customers c
              WHERE c.operator_id = NEW.operator_id AND c.tenant_id = NEW.tenant_id);
"""
# A refund of a queued (or recently delivered) event queues its cancel.
_QUEUE_CANCEL = """
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT r.operator_id, r.event_id, 'cancel', r.event_name, NEW.refunded_at, 0
FROM stripe_meter_outbox r
WHERE r.event_id = OLD.id AND r.action = 'report';
"""
_REFUNDED = "OLD.refunded_at IS NULL AND NEW.refunded_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("meters") as batch_op:
        batch_op.add_column(sa.Column("stripe_event_name", sa.String(100), nullable=True))
    op.create_table(
        "stripe_accounts",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("secret_key", sa.Text(), nullable=False),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("api_key_rule", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", name="pk_stripe_accounts"),
    )
    op.create_table(
        "stripe_customers",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("tenant_id", sa.String(210), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("default_payment_method", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "tenant_id", name="pk_stripe_customers"),
        sa.UniqueConstraint(
            "operator_id", "customer_id", name="uq_stripe_customers_operator_id_customer_id"
        ),
    )
    op.create_table(
        "stripe_payment_methods",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("payment_method_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "operator_id", "payment_method_id", name="pk_stripe_payment_methods"
        ),
    )
    op.create_index(
        "ix_stripe_payment_methods_customer",
        "stripe_payment_methods",
        ["operator_id", "customer_id"],
    )
    op.create_table(
        "stripe_events",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "event_id", name="pk_stripe_events"),
    )
    op.create_index(
        "ix_stripe_events_received", "stripe_events", ["operator_id", "received_at", "event_id"]
    )
    op.create_table(
        "stripe_object_versions",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("event_created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "object_id", name="pk_stripe_object_versions"),
    )
    _create_outbox()


def _create_outbox() -> None:
    op.create_table(
        "stripe_meter_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("failed_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_meter_outbox"),
    )
    op.create_index("ix_stripe_meter_outbox_event", "stripe_meter_outbox", ["event_id"])
    op.create_index(
        "ix_stripe_meter_outbox_pending",
        "stripe_meter_outbox",
        ["due_at"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION stripe_outbox_report() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_QUEUE_REPORT} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE FUNCTION stripe_outbox_cancel() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_QUEUE_CANCEL} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER stripe_outbox_on_insert AFTER INSERT ON usage_events"
            " FOR EACH ROW EXECUTE FUNCTION stripe_outbox_report()"
        )
        op.execute(
            "CREATE TRIGGER stripe_outbox_on_refund AFTER UPDATE OF refunded_at ON usage_events"
            f" FOR EACH ROW WHEN ({_REFUNDED}) EXECUTE FUNCTION stripe_outbox_cancel()"
        )
        return
    op.execute(
        "CREATE TRIGGER stripe_outbox_on_insert AFTER INSERT ON usage_events"
        f" BEGIN {_QUEUE_REPORT} END"
    )
    op.execute(
        "CREATE TRIGGER stripe_outbox_on_refund AFTER UPDATE OF refunded_at ON usage_events"
        f" WHEN {_REFUNDED} BEGIN {_QUEUE_CANCEL} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER stripe_outbox_on_refund ON usage_events")
        op.execute("DROP TRIGGER stripe_outbox_on_insert ON usage_events")
        op.execute("DROP FUNCTION stripe_outbox_cancel()")
        op.execute("DROP FUNCTION stripe_outbox_report()")
    else:
        op.execute("DROP TRIGGER stripe_outbox_on_refund")
        op.execute("DROP TRIGGER stripe_outbox_on_insert")
    op.drop_index("ix_stripe_meter_outbox_pending", "stripe_meter_outbox")
    op.drop_index("ix_stripe_meter_outbox_event", "stripe_meter_outbox")
    op.drop_table("stripe_meter_outbox")
    op.drop_table("stripe_object_versions")
    op.drop_index("ix_stripe_events_received", "stripe_events")
    op.drop_table("stripe_events")
    op.drop_index("ix_stripe_payment_methods_customer", "stripe_payment_methods")
    op.drop_table("stripe_payment_methods")
    op.drop_table("stripe_customers")
    op.drop_table("stripe_accounts")
    with op.batch_alter_table("meters") as batch_op:
        batch_op.drop_column("stripe_event_name")
