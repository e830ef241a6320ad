"""The end users' tables, on the schema's one MetaData: accounts
and their preferences, sessions, sign-in attempts and password checks,
email changes, push tokens; usage alerts, in-app notifications and the delivery outbox."""

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

_BIG_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid alias

# An end user, with their preferences. Deleted, with everything below that
# names them, when a scheduled deletion's grace period ends.
end_users = Table(
    "end_users",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),  # lower-cased: unique per operator
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("notify_in_app", Boolean, nullable=False),
    Column("notify_push", Boolean, nullable=False),
    Column("notify_email", Boolean, nullable=False),
    Column("profile_visibility", String(16), nullable=False),
    Column("show_email", Boolean, nullable=False),
    Column("show_location", Boolean, nullable=False),
    Column("theme", String(16), nullable=False),
    Column("timezone", String(64), nullable=True),
    Column("locale", String(64), nullable=True),
    Column("deletion_scheduled_at", BigInteger, nullable=True),
    Column("deletion_reason", String(1000), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("operator_id", "email_key"),
    Index("ix_end_users_deletion", "deletion_scheduled_at"),
)

# Signed-in sessions: only the token's SHA-256 is kept (256-bit random
# tokens, looked up by hash on every call: no cache, so that a revocation
# holds on the next call on every replica).
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("operator_id", Integer, nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("ip_address", String(64), nullable=False),
    Column("user_agent", String(512), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_user_sessions_user", "operator_id", "user_id"),
)

# Every sign-in attempt, by the email tried (a failure may name no user).
# An attempt is inserted as a failure before its password is verified, and
# marked a success after (end_users/attempts.py): the throttles count it while
# it is in flight. ip_address is the operator's word (SignInRequest);
# client_address the caller's address as the server saw it (migration 0012).
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("operator_id", Integer, nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("user_id", String(200), nullable=True),
    Column("ip_address", String(64), nullable=False),
    Column("user_agent", String(512), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("client_address", String(64), nullable=True),
    Index("ix_login_attempts_email", "operator_id", "email_key", "created_at"),
    Index("ix_login_attempts_user", "operator_id", "user_id", "created_at"),
    Index("ix_login_attempts_address", "operator_id", "client_address", "created_at"),
)

# Every check of a signed-in user's password asked again (ChangePassword,
# RequestEmailChange, RequestDeletion), throttled as sign-ins are
# (migration 0012).
password_checks = Table(
    "password_checks",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("operator_id", Integer, nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_password_checks_user", "operator_id", "user_id", "created_at"),
)

# Pending email changes: the mailed token's SHA-256, single use.
email_changes = Table(
    "email_changes",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("operator_id", Integer, nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("new_email", String(320), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Index("ix_email_changes_user", "operator_id", "user_id"),
)

# Push tokens: one user per token (the latest that registered it).
push_tokens = Table(
    "push_tokens",
    metadata,
    Column("operator_id", Integer, primary_key=True),
    Column("token", String(512), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("platform", String(8), nullable=False),
    Column("device_id", String(200), nullable=True),
    Column("registered_at", BigInteger, nullable=False),
    Index("ix_push_tokens_user", "operator_id", "user_id", "registered_at"),
)

# The operator's alert webhook; the signing secret sealed (storage/secrets.py).
alert_webhooks = Table(
    "alert_webhooks",
    metadata,
    Column("operator_id", Integer, ForeignKey("operators.id"), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("secret", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# One row per owner, primitive, period and threshold reached, inserted by a
# trigger on usage_events in the crossing event's own transaction (migration
# 0006); dispatched_at is set when its notification and deliveries exist.
usage_alerts = Table(
    "usage_alerts",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("operator_id", Integer, nullable=False),
    Column("tenant_id", String(210), nullable=False),
    Column("primitive", String(63), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("threshold", Integer, nullable=False),  # percent
    Column("used", BigInteger, nullable=False),  # micro-units
    Column("quota_limit", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("dispatched_at", BigInteger, nullable=True),
    UniqueConstraint(
        "operator_id",
        "tenant_id",
        "primitive",
        "window_start",
        "threshold",
        name="uq_usage_alerts_once",
    ),
    Index(
        "ix_usage_alerts_undispatched",
        "id",
        sqlite_where=text("dispatched_at IS NULL"),
        postgresql_where=text("dispatched_at IS NULL"),
    ),
    Index("ix_usage_alerts_operator", "operator_id", "id"),
)

# In-app notifications.
notifications = Table(
    "notifications",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("operator_id", Integer, nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("alert_id", BigInteger, nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", String(1000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("read_at", BigInteger, nullable=True),
    Index("ix_notifications_user", "operator_id", "user_id", "id"),
)

# What is to be sent: mails, pushes and webhook posts, claimed by senders for
# a lease and retried with backoff (users/delivery.py).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("operator_id", Integer, nullable=False),
    Column("channel", String(8), nullable=False),  # email | push | webhook
    Column("target", String(2048), nullable=False),  # address, token or URL
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),  # text, or JSON for push and webhook
    # The body is sealed with BILLING_SECRETS_KEY (it holds a code: migration 0012).
    Column("sealed", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", BigInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("claimed_until", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("failed_at", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Index(
        "ix_deliveries_pending",
        "due_at",
        sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
    ),
)
