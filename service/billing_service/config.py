"""Settings: one flat object, read from BILLING_* environment variables."""

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from .delivery.addresses import networks
from .forwarding import proxy_networks


class Settings(BaseSettings):
    """Everything the service can be told at start-up. See README, Configuration."""

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    # SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...
    # The default is a file in the user's data directory, wherever the command
    # runs from (default_database_url).
    database_url: str = Field(default_factory=lambda: default_database_url())
    grpc_addr: str = "127.0.0.1:50051"
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

    @field_validator("alert_webhook_allow_networks")
    @classmethod
    def _webhook_networks_parse(cls, value: str) -> str:
        networks(value)  # ValueError names the one that is not a network
        return value

    # -- sign-in throttles (README, End users; the per-email one is fixed) --
    # Failed sign-ins from one client address (any email) in 15 minutes after
    # which that address's sign-ins are refused for the operator; 0: no limit.
    sign_in_address_max_failures: int = Field(default=50, ge=0)
    # Peers trusted to name the client in x-forwarded-for (forwarding.py):
    # comma-separated addresses or networks. Loopback: the gateway `serve`
    # runs beside the gRPC server; empty: the peer is always the client.
    trusted_proxies: str = "127.0.0.1/8,::1"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        proxy_networks(value)  # ValueError, as pydantic reports it
        return value


def default_database_url() -> str:
    """SQLite in the user's data directory ($XDG_DATA_HOME/billing-service)."""
    return f"sqlite+aiosqlite:///{Path(user_data_dir('billing-service')) / 'billing.db'}"


def shown_database(url: str) -> str:
    """The database URL as commands print it: without a password."""
    return make_url(url).render_as_string(hide_password=True)


def server_processes(settings: Settings, cores: int) -> int:
    """How many processes `serve` runs: BILLING_WORKERS, or for 0 one per core
    it may run on (docs/tuning.md)."""
    return settings.workers or max(1, cores)
