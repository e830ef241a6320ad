"""Billing's tables: the daily aggregates of usage (written by triggers,
metering/triggers.py) and credit grants."""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from .metadata import metadata

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
