"""The metering core's tables: usage events and the counters beside them."""

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .metadata import metadata

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
