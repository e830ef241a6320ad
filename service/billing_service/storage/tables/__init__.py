"""The relational schema (SQLAlchemy Core), a module per context on one
MetaData. Alembic migrations create it.

Instants are stored as integer microseconds since the Unix epoch (UTC): exact,
ordered and the same on SQLite and PostgreSQL.
"""

from .billing import (
    credit_grants,
    usage_daily,
)
from .catalog import (
    account_kits,
    api_keys,
    meters,
    operators,
    plans,
    projects,
    subscriptions,
)
from .end_users import (
    alert_webhooks,
    deliveries,
    email_changes,
    end_users,
    login_attempts,
    notifications,
    password_checks,
    push_tokens,
    usage_alerts,
    user_sessions,
)
from .metadata import metadata
from .metering import (
    usage_counters,
    usage_events,
)
from .stripe import (
    stripe_accounts,
    stripe_customers,
    stripe_events,
    stripe_meter_cursor,
    stripe_meter_outbox,
    stripe_object_versions,
    stripe_payment_methods,
)

__all__ = [
    "account_kits",
    "alert_webhooks",
    "api_keys",
    "credit_grants",
    "deliveries",
    "email_changes",
    "end_users",
    "login_attempts",
    "metadata",
    "meters",
    "notifications",
    "operators",
    "password_checks",
    "plans",
    "projects",
    "push_tokens",
    "stripe_accounts",
    "stripe_customers",
    "stripe_events",
    "stripe_meter_cursor",
    "stripe_meter_outbox",
    "stripe_object_versions",
    "stripe_payment_methods",
    "subscriptions",
    "usage_alerts",
    "usage_counters",
    "usage_daily",
    "usage_events",
    "user_sessions",
]
