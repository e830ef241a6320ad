"""The relational schema (SQLAlchemy Core). Alembic migrations create it.

Instants are stored as integer microseconds since the Unix epoch (UTC): exact,
ordered and the same on SQLite and PostgreSQL.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

operators = Table(
    "operators",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # Bumped in the same transaction as any change to the operator's plans,
    # kits or subscriptions: replicas caching tenants' terms compare it once
    # per batch of metered calls to know their cache is still true.
    Column("terms_version", BigInteger, nullable=False, server_default="0"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False, index=True),
    # SHA-256 of the whole key: keys are 256-bit random secrets, so a fast hash
    # is safe, and a deterministic one lets the key be looked up by its hash.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

account_kits = Table(
    "account_kits",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("id", String(63), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("primitives", Text, nullable=False),  # JSON list
    Column("permissions", Text, nullable=False),  # JSON list
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("key", String(63), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("account_kit_id", String(63), nullable=True),
    Column("stripe_price_id", String(255), nullable=True),
    Column("quotas", Text, nullable=False),  # JSON object primitive -> limit
    Column("period", String(16), nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    # JSON object meter -> {"unit_price": decimal string, "included": decimal string}.
    Column("prices", Text, nullable=False, server_default="{}"),
    Column("currency", String(3), nullable=False, server_default="usd"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # A Stripe price names one plan of the operator (migration 0010).
    Index(
        "uq_plans_stripe_price",
        "operator_id",
        "stripe_price_id",
        unique=True,
        sqlite_where=text("stripe_price_id IS NOT NULL"),
        postgresql_where=text("stripe_price_id IS NOT NULL"),
    ),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    # The owner's key (domain/owners.py): a user's id or `org/` + an organization's.
    Column("tenant_id", String(210), primary_key=True),
    Column("plan_key", String(63), nullable=False),
    Column("status", String(32), nullable=False),
    Column("stripe_customer_id", String(255), nullable=True),
    Column("stripe_subscription_id", String(255), nullable=True),
    Column("current_period_end", BigInteger, nullable=True),
    # Stripe's billing_cycle_anchor (migration 0010): the quota periods step
    # from it when set, as current_period_end is clamped in short months.
    Column("billing_cycle_anchor", BigInteger, nullable=True),
    # The tenant's assigned account kit (set by SetSubscription with assign_kit).
    Column("account_kit_id", String(63), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_subscriptions_plan", "operator_id", "plan_key", "tenant_id"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("operator_id", Integer, nullable=False),
    Column("tenant_id", String(210), nullable=False),
    Column("primitive", String(63), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("refunded_at", BigInteger, nullable=True),
    # The figures answered to the first call, replayed to retries.
    Column("used_after", BigInteger, nullable=False),
    Column("quota_limit", BigInteger, nullable=True),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("plan_key", String(63), nullable=True),
    Column("project_id", String(200), nullable=True),
    Column("detail", Text, nullable=True),  # JSON: an AI call's breakdown
    UniqueConstraint("operator_id", "idempotency_key"),
    # PostgreSQL: the id of the transaction that wrote an event of a meter
    # sent to Stripe (a trigger, migration 0008), which the meter sender's
    # cursor follows; NULL otherwise, and always on SQLite.
    Column("stripe_xact", BigInteger, nullable=True),
    # A digest of the whole request an event was recorded for (stored with
    # an idempotency key): a retry under the key replays only the same
    # request (metering/decide.py, replay). NULL before migration 0009.
    Column("request_digest", String(32), nullable=True),
    # For a request recorded as several events (an AI call, Envoy's
    # descriptors): the id of its first event, on each of them, so that a
    # refund of any voids them all; NULL for an event recorded alone.
    Column("call_event_id", BigInteger, nullable=True),
    Index("ix_usage_events_tenant_time", "operator_id", "tenant_id", "primitive", "occurred_at"),
    Index(
        "ix_usage_events_stripe",
        "stripe_xact",
        "id",
        sqlite_where=text("stripe_xact IS NOT NULL"),
        postgresql_where=text("stripe_xact IS NOT NULL"),
    ),
    Index(
        "ix_usage_events_call",
        "call_event_id",
        sqlite_where=text("call_event_id IS NOT NULL"),
        postgresql_where=text("call_event_id IS NOT NULL"),
    ),
)

projects = Table(
    "projects",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("owner", String(210), nullable=False),  # the owner's key
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_projects_owner", "operator_id", "owner", "id"),
)

# One row per (operator, tenant, primitive): the sum of the unrefunded events
# whose occurred_at lies in [window_start, window_end). When the window in
# force moves on, the row is re-keyed and recomputed from the events. Every
# writer of events locks this row first, which is what makes quotas exact
# under concurrency, across processes too.
usage_counters = Table(
    "usage_counters",
    metadata,
    Column("operator_id", Integer, primary_key=True),
    Column("tenant_id", String(210), primary_key=True),
    Column("primitive", String(63), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("used", BigInteger, nullable=False),
)


# The operator's meters (catalog/meter_model.py has the built-in ones).
meters = Table(
    "meters",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("key", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("aggregation", String(8), nullable=False),
    Column("scale", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # The Stripe meter's event name its usage events are sent to, if any.
    Column("stripe_event_name", String(100), nullable=True),
)

# Per owner, project ('' for none), primitive and UTC day (days since the
# epoch): the aggregates of the unrefunded events, kept by triggers on
# usage_events in the events' own transactions (migration 0004), so that
# every route that writes events keeps them, and reads of a month read at
# most 31 rows per meter and project. Quantities in micro-units.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("operator_id", Integer, primary_key=True),
    Column("tenant_id", String(210), primary_key=True),
    Column("project_id", String(200), primary_key=True),
    Column("primitive", String(63), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("peak", BigInteger, nullable=False),
    Column("last_value", BigInteger, nullable=False),  # the reading latest in time
    Column("last_at", BigInteger, nullable=False),
    Column("last_id", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False),
    Index("ix_usage_daily_owner_day", "operator_id", "tenant_id", "day"),
)

credit_grants = Table(
    "credit_grants",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False),
    Column("tenant_id", String(210), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("granted_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("reason", String(200), nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    UniqueConstraint("operator_id", "idempotency_key"),
    Index("ix_credit_grants_owner", "operator_id", "tenant_id"),
)

# -- Stripe ------------------------------------------------------------------

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

# The end users' tables are defined on this metadata in their own module.
from . import end_users as user_schema  # noqa: E402, F401
