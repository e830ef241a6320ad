"""Settings: one flat object, read from BILLING_* environment variables."""

import re
import typing
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from .addresses import DEFAULT_GRPC_ADDR, split_host_port
from .database_urls import normalised_postgres
from .domain.networks import networks

# The drivers the service ships with, by the URL schemes that name them: the
# form managed PostgreSQL services hand out (postgresql://, postgres://) is
# asyncpg's.
_DATABASE_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
DATABASE_URL_RULE = (
    "must be sqlite+aiosqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    " (postgres:// and postgresql+asyncpg:// too)"
)
POOLERS = ("transaction", "session", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Everything the service can be told at start-up. See README, Configuration."""

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    # Validators of the settings whose type alone does not say what is valid;
    # a ValueError's message is the rule, printed after the variable's name.
    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        return supported_database_url(url)

    @field_validator("grpc_addr")
    @classmethod
    def _listen_address(cls, address: str) -> str:
        split_host_port(address)
        return address

    @field_validator("http_addr", "metrics_addr", "gateway_grpc_target")
    @classmethod
    def _optional_address(cls, address: str) -> str:
        if address:
            split_host_port(address)
        return address

    @field_validator("admin_key_hash")
    @classmethod
    def _admin_key_hash(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be the SHA-256 `billing-service admin-key create` prints")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, level: str) -> str:
        if level.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level.upper()

    # SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...
    # (postgresql:// and postgres:// are read as asyncpg's, sqlite:// as aiosqlite's).
    # The default is a file in the user's data directory, wherever the command
    # runs from (default_database_url).
    database_url: str = Field(default_factory=lambda: default_database_url())
    grpc_addr: str = DEFAULT_GRPC_ADDR
    # host:port of the REST gateway started beside the gRPC server; empty disables it.
    http_addr: str = "127.0.0.1:8080"
    # Log every HTTP request the gateway serves (uvicorn's access log).
    http_access_log: bool = False
    # gRPC address `billing-service gateway` (the gateway alone) calls; empty: grpc_addr.
    gateway_grpc_target: str = ""
    # Seconds SIGTERM waits for in-flight RPCs before cancelling them.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Seconds after which the server asks a client to reconnect (HTTP/2 GOAWAY;
    # gRPC adds up to 10% of jitter, and calls in flight get
    # shutdown_grace_seconds to finish): long-lived connections spread again
    # over the processes (SO_REUSEPORT) and replicas behind a TCP balancer. 0: never.
    grpc_max_connection_age_seconds: float = Field(default=300.0, ge=0)
    # Seconds an authenticated API key is trusted before it is looked up again:
    # the longest a revoked key keeps working on a replica that saw it.
    auth_cache_seconds: float = Field(default=2.0, ge=0)
    # -- administration without a shell (README, Administration) --
    # SHA-256 (64 hex digits) of the admin credential, the one key that calls
    # AdminService; empty: the admin API refuses every call.
    admin_key_hash: str = ""
    # An operator created at start-up when absent, with a `full` key whose
    # secret is in bootstrap_key_file (written there, mode 0600, when the
    # file is absent or empty). Both or neither.
    bootstrap_operator: str = ""
    bootstrap_key_file: str = ""
    # Apply migrations at start-up. Unset: only on SQLite (the embedded default);
    # PostgreSQL deployments run `billing-service migrate` as a release step.
    migrate_on_start: bool | None = None
    # Server processes sharing grpc_addr with SO_REUSEPORT (the kernel spreads
    # connections); 0: one per CPU core. The REST gateway runs in the first.
    workers: int = Field(default=1, ge=0)
    # Where the background jobs run (the Stripe meter sender, end users' mail,
    # push and alert deliveries, due deletions): "process", a process of their
    # own beside the servers, so that they never hold up a call; "inline", in
    # each server process; "off", not here (`billing-service jobs` or another
    # replica runs them).
    background_jobs: Literal["process", "inline", "off"] = "process"
    # What stands between the service and PostgreSQL, which it cannot tell
    # over the wire: "transaction", a pooler that hands each transaction to
    # any server connection (PgBouncer's pool_mode=transaction, RDS Proxy, the
    # poolers of managed services), so that no prepared statement is kept
    # past its transaction; "session" or "none", one server connection per
    # client connection. statement_cache_size=0 in the URL says the same.
    database_pooler: Literal["transaction", "session", "none"] = "none"

    @model_validator(mode="after")
    def _pooled_statements(self) -> "Settings":
        # The pooler's one consequence, carried by the URL to every engine and
        # connection the URL makes (database_urls.PostgresTarget.pooled).
        if self.database_pooler == "transaction" and not self.database_url.startswith("sqlite"):
            self.database_url = with_option(self.database_url, "statement_cache_size", "0")
        return self

    # Size of the database connection pool (PostgreSQL).
    db_pool_size: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    # text (human-readable) or json (one object per line: time, level, logger,
    # message, and for RPCs rpc, code, duration_ms, operator_id, request_id).
    log_format: Literal["text", "json"] = "text"
    # host:port of Prometheus' /metrics (the first serving process); empty: off.
    metrics_addr: str = ""
    # One log line per RPC (its method, status code, duration, operator id and
    # x-request-id), at INFO. Off by default, as the gateway's access log.
    rpc_log: bool = False
    # Fernet key(s) encrypting operators' Stripe secrets at rest: a comma-
    # separated list to rotate keys, the first encrypting (README, Stripe).
    # Unset: connecting a Stripe account fails with FAILED_PRECONDITION.
    secrets_key: SecretStr | None = None
    # Where every call to Stripe goes: Stripe's API, a fake, stripe-mock or a proxy.
    stripe_api_base: str = "https://api.stripe.com"
    # The Stripe library's own retries of a failed call (network, 409, 5xx).
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    # Seconds a call to Stripe may take.
    stripe_timeout_seconds: float = Field(default=30.0, gt=0)
    # Meter events a process sends to Stripe per second, at most (Stripe's
    # meter event stream takes 10,000 a second per live account).
    stripe_meter_events_per_second: float = Field(default=1000.0, gt=0)
    # Seconds a sender owns the meter events it took before another may take
    # them (a sender that crashed mid-send): a resend is harmless.
    stripe_outbox_lease_seconds: float = Field(default=60.0, gt=0)
    # Seconds the sender waits when the outbox has nothing due.
    stripe_outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # -- end users (README, End users) --
    # Days a session token stays valid after sign-in.
    session_days: float = Field(default=30.0, gt=0)
    # Days between a deletion request and the account's deletion.
    deletion_grace_days: float = Field(default=30.0, ge=0)
    # argon2id parameters of new password hashes; a hash made with others is
    # replaced at the user's next sign-in.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    password_parallelism: int = Field(default=4, ge=1)
    # SMTP server mail goes through; empty: mail stays in the outbox, unsent.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # starttls (upgrade a plain connection), tls (TLS from the start) or none.
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    mail_from: str = "billing@localhost"
    # Expo's push API (a proxy or a fake may stand in).
    expo_push_url: str = "https://exp.host/--/api/v2/push/send"
    # Seconds the end-user worker waits when nothing is due.
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    # Seconds a worker owns the deliveries it took before another may take them.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    # Attempts before a delivery is given up (about a day with the backoff).
    delivery_max_attempts: int = Field(default=30, ge=1)
    # Networks (comma-separated, e.g. "127.0.0.0/8,::1/128") alert webhooks may
    # be posted to besides global addresses, and over http://; empty: https to
    # global addresses only (README, Usage alerts).
    alert_webhook_allow_networks: str = ""

    # -- sign-in throttles (README, End users; the per-email one is fixed) --
    # Failed sign-ins from one client address (any email) in 15 minutes after
    # which that address's sign-ins are refused for the operator; 0: no limit.
    sign_in_address_max_failures: int = Field(default=50, ge=0)
    # Peers trusted to name the client in x-forwarded-for (forwarding.py):
    # comma-separated addresses or networks. Loopback: the gateway `serve`
    # runs beside the gRPC server; empty: the peer is always the client.
    trusted_proxies: str = "127.0.0.1/8,::1"

    @field_validator("alert_webhook_allow_networks", "trusted_proxies")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        networks(value)  # ValueError names the one that is not a network
        return value


def default_database_url() -> str:
    """SQLite in the user's data directory ($XDG_DATA_HOME/billing-service)."""
    return f"sqlite+aiosqlite:///{Path(user_data_dir('billing-service')) / 'billing.db'}"


def supported_database_url(url: str) -> str:
    """`url` with its scheme naming the driver the service uses; ValueError
    (DATABASE_URL_RULE, never the URL: it may hold a password) for another
    database, another driver, or what is no URL."""
    from sqlalchemy.engine import make_url  # not for `health`, which reads no settings
    from sqlalchemy.exc import ArgumentError

    scheme, separator, rest = url.partition("://")
    driver = _DATABASE_DRIVERS.get(scheme.lower()) if separator else None
    if driver is None:
        given = f", not {scheme}://" if separator else ""
        raise ValueError(DATABASE_URL_RULE + given)
    if driver == "postgresql+asyncpg":
        rest = normalised_postgres(rest)  # ValueError: the rule of the part that is wrong
    normalised = f"{driver}://{rest}"
    try:
        make_url(normalised)  # parses the port too
    except (ArgumentError, ValueError):
        raise ValueError(DATABASE_URL_RULE) from None
    return normalised


def with_option(url: str, name: str, value: str) -> str:
    """`url` with `name=value` in its query, in place of any value it had."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.update_query_dict({name: value}).render_as_string(hide_password=False)


def invalid_settings(error: ValidationError) -> list[str]:
    """One line per invalid setting: its variable and the rule its value broke."""
    lines: dict[str, str] = {}
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        field = Settings.model_fields.get(name)
        if field is None:
            continue
        if problem["type"] == "value_error":  # one of the validators above: its message
            rule = str(problem["ctx"]["error"])
        else:
            rule = setting_rule(field)
        lines.setdefault(name, f"BILLING_{name.upper()}: {rule}")
    return list(lines.values()) or [" ".join(str(error).split())]


def setting_rule(field: FieldInfo) -> str:
    """What a setting's type and bounds ask for: "must be an integer ≥ 0"."""
    kinds = [kind for kind in _alternatives(field.annotation) if kind is not NoneType]
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is Literal:
        return "must be one of " + ", ".join(str(v) for v in typing.get_args(kinds[0]))
    nouns: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false"}
    noun = nouns.get(kinds[0], "valid") if len(kinds) == 1 else "valid"
    return " ".join(("must be", noun, *_bounds(field.metadata)))


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _bounds(constraints: list[Any]) -> list[str]:
    """pydantic's constraints (Field(ge=...) and the like) in words."""
    found = {n: getattr(c, n) for c in constraints for n in _SYMBOLS if hasattr(c, n)}
    if "ge" in found and "le" in found:
        return [f"from {found['ge']:g} to {found['le']:g}"]
    words = [f"{symbol} {found[n]:g}" for n, symbol in _SYMBOLS.items() if n in found]
    return [" and ".join(words)] if words else []


_SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def shown_database(url: str) -> str:
    """The database URL as commands print it: without a password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def server_processes(settings: Settings, cores: int) -> int:
    """How many processes `serve` runs: BILLING_WORKERS, or for 0 one per core
    it may run on (docs/tuning.md)."""
    return settings.workers or max(1, cores)
