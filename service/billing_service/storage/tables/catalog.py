"""The catalog's tables: operators, their API keys, account kits, plans,
subscriptions, projects and meters."""

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
    text,
)

from .metadata import metadata

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
    # A disabled operator's keys authenticate nothing; its data stays.
    Column("disabled_at", BigInteger, nullable=True),
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
    # Space-separated scopes (api/scopes.py): `full`, `metering`, `read`.
    Column("scopes", String(64), nullable=False, server_default="full"),
    # Past this instant the key authenticates nothing (a rotated key's
    # overlap ends here too).
    Column("expires_at", BigInteger, nullable=True),
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
