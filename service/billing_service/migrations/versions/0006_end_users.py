"""End users: accounts and preferences, sessions, sign-in attempts, email
changes, push tokens; usage alerts raised by a trigger on usage_events,
in-app notifications and the delivery outbox

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNDISPATCHED = "dispatched_at IS NULL"
_PENDING = "delivered_at IS NULL AND failed_at IS NULL"

# The least usage at which p% of the limit is reached (rounded up), in
# integers that never exceed the limit: SQLite would turn an overflowing
# product into a float.
_MARK = "(NEW.quota_limit / 100) * t.p + ((NEW.quota_limit % 100) * t.p + 99) / 100"
# An event whose usage went from below a mark to at or above it raises that
# threshold's alert, once per owner, primitive and period (the unique key):
# in the event's own transaction, on every route that writes events.
_RAISE_ALERTS = f"""
INSERT INTO usage_alerts (operator_id, tenant_id, primitive, window_start, window_end,
                          threshold, used, quota_limit, created_at)
SELECT NEW.operator_id, NEW.tenant_id, NEW.primitive, NEW.window_start, NEW.window_end,
       t.p, NEW.used_after, NEW.quota_limit, NEW.recorded_at
FROM (SELECT 80 AS p UNION ALL SELECT 100) AS t
WHERE NEW.used_after - NEW.quantity < {_MARK} AND {_MARK} <= NEW.used_after
ON CONFLICT DO NOTHING;
"""
_HAS_LIMIT = "NEW.quota_limit > 0 AND NEW.quantity > 0"


def upgrade() -> None:
    _create_accounts()
    _create_alerts()
    _create_deliveries()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION usage_alerts_raise() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_RAISE_ALERTS} RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER usage_alerts_on_insert AFTER INSERT ON usage_events"
            f" FOR EACH ROW WHEN ({_HAS_LIMIT}) EXECUTE FUNCTION usage_alerts_raise()"
        )
    else:
        op.execute(
            "CREATE TRIGGER usage_alerts_on_insert AFTER INSERT ON usage_events"
            f" WHEN {_HAS_LIMIT} BEGIN {_RAISE_ALERTS} END"
        )


def _create_accounts() -> None:
    op.create_table(
        "end_users",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("notify_in_app", sa.Boolean(), nullable=False),
        sa.Column("notify_push", sa.Boolean(), nullable=False),
        sa.Column("notify_email", sa.Boolean(), nullable=False),
        sa.Column("profile_visibility", sa.String(16), nullable=False),
        sa.Column("show_email", sa.Boolean(), nullable=False),
        sa.Column("show_location", sa.Boolean(), nullable=False),
        sa.Column("theme", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("locale", sa.String(64), nullable=True),
        sa.Column("deletion_scheduled_at", sa.BigInteger(), nullable=True),
        sa.Column("deletion_reason", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "id", name="pk_end_users"),
        sa.UniqueConstraint("operator_id", "email_key", name="uq_end_users_operator_id_email_key"),
    )
    op.create_index("ix_end_users_deletion", "end_users", ["deletion_scheduled_at"])
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(512), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_user_sessions_token_hash"),
    )
    op.create_index("ix_user_sessions_user", "user_sessions", ["operator_id", "user_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(512), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index(
        "ix_login_attempts_email", "login_attempts", ["operator_id", "email_key", "created_at"]
    )
    op.create_index(
        "ix_login_attempts_user", "login_attempts", ["operator_id", "user_id", "created_at"]
    )
    op.create_table(
        "email_changes",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("new_email", sa.String(320), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_email_changes"),
    )
    op.create_index("ix_email_changes_user", "email_changes", ["operator_id", "user_id"])
    op.create_table(
        "push_tokens",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(512), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(8), nullable=False),
        sa.Column("device_id", sa.String(200), nullable=True),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "token", name="pk_push_tokens"),
    )
    op.create_index(
        "ix_push_tokens_user", "push_tokens", ["operator_id", "user_id", "registered_at"]
    )


def _create_alerts() -> None:
    op.create_table(
        "alert_webhooks",
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", name="pk_alert_webhooks"),
    )
    op.create_table(
        "usage_alerts",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(210), nullable=False),
        sa.Column("primitive", sa.String(63), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("quota_limit", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("dispatched_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_usage_alerts"),
        sa.UniqueConstraint(
            "operator_id",
            "tenant_id",
            "primitive",
            "window_start",
            "threshold",
            name="uq_usage_alerts_once",
        ),
    )
    op.create_index(
        "ix_usage_alerts_undispatched",
        "usage_alerts",
        ["id"],
        sqlite_where=sa.text(_UNDISPATCHED),
        postgresql_where=sa.text(_UNDISPATCHED),
    )
    op.create_index("ix_usage_alerts_operator", "usage_alerts", ["operator_id", "id"])
    op.create_table(
        "notifications",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("read_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index("ix_notifications_user", "notifications", ["operator_id", "user_id", "id"])


def _create_deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("failed_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["due_at"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER usage_alerts_on_insert ON usage_events")
        op.execute("DROP FUNCTION usage_alerts_raise()")
    else:
        op.execute("DROP TRIGGER usage_alerts_on_insert")
    for table in (
        "deliveries",
        "notifications",
        "usage_alerts",
        "alert_webhooks",
        "push_tokens",
        "email_changes",
        "login_attempts",
        "user_sessions",
        "end_users",
    ):
        op.drop_table(table)
