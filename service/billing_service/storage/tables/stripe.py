"""Stripe's tables: operators' accounts, customers, payment methods, events
handled, object versions, the meter sender's cursor and the outbox of cancels."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .metadata import metadata

# The operator's Stripe account. The secrets are Fernet tokens
# (storage/secrets.py), never the secrets themselves.
stripe_accounts = Table(
    "stripe_accounts",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("secret_key", Text, nullable=False),
    Column("webhook_secret", Text, nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("api_key_rule", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One Stripe customer per owner, ever (EnsureCustomer).
stripe_customers = Table(
    "stripe_customers",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("tenant_id", String(210), primary_key=True),  # the owner's key
    Column("customer_id", String(255), nullable=False),
    Column("default_payment_method", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("operator_id", "customer_id"),
)

# Payment methods as the webhooks last saw them: customer_id NULL once detached.
stripe_payment_methods = Table(
    "stripe_payment_methods",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("payment_method_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_stripe_payment_methods_customer", "operator_id", "customer_id"),
)

# Every webhook event received: a duplicate is answered from here.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("detail", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # Stripe's `created`
    Column("received_at", BigInteger, nullable=False),
    Index("ix_stripe_events_received", "operator_id", "received_at", "event_id"),
)

# Per Stripe object, the `created` of the newest event applied to it: an
# older event arriving later changes nothing.
stripe_object_versions = Table(
    "stripe_object_versions",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("object_id", String(255), primary_key=True),
    Column("event_created", BigInteger, nullable=False),
)

# How far the meter sender has read usage_events (stripe/cursor.py):
# one row, leased by one sender at a time. PostgreSQL orders by (xact,
# event_id), SQLite by event_id; SQLite's events up to read_after are from
# before the cursor (migration 0008).
stripe_meter_cursor = Table(
    "stripe_meter_cursor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("xact", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("read_after", BigInteger, nullable=False),
    Column("holder", String(64), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
)

# What the cursor cannot settle at once: refunds' cancels (queued by a
# trigger on usage_events in the refund's own transaction), reports whose
# send failed (due again later, or failed for good), and reports queued by
# the trigger of migration 0005 before the cursor, and reports held until
# their owner has a Stripe customer (migration 0011). Delivered rows are
# kept two days: a cancel finds when Stripe received its report.
stripe_meter_outbox = Table(
    "stripe_meter_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("operator_id", Integer, nullable=False),
    Column("event_id", BigInteger, nullable=False),  # usage_events.id
    Column("action", String(8), nullable=False),  # report | cancel
    Column("event_name", String(100), nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("claimed_until", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("failed_at", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    # A report held since then: its owner has no Stripe customer yet.
    Column("held_at", BigInteger, nullable=True),
    Index("ix_stripe_meter_outbox_event", "event_id"),
    Index(
        "ix_stripe_meter_outbox_held",
        "operator_id",
        sqlite_where=text("held_at IS NOT NULL"),
        postgresql_where=text("held_at IS NOT NULL"),
    ),
    Index(
        "ix_stripe_meter_outbox_pending",
        "due_at",
        sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
    ),
)
