"""Shared fixtures: throwaway databases on both backends, a real server on
loopback, an operator with a key, and stubs that send it."""

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
import pytest
from billing.v1 import (
    account_kit_pb2_grpc,
    billing_pb2_grpc,
    meter_pb2_grpc,
    plan_pb2_grpc,
    project_pb2_grpc,
    subscription_pb2_grpc,
    usage_pb2_grpc,
)

from billing_service.api.server import RunningServer, start_server
from billing_service.app import App, open_app
from billing_service.catalog.keys import mint_key
from billing_service.clock import FixedClock
from billing_service.config import Settings

PG_HOST = os.environ.get("BILLING_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BILLING_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("BILLING_TEST_PG_USER", "postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"

# A mid-month instant, so that calendar periods are unambiguous.
DEFAULT_NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    async def probe() -> bool:
        try:
            conn = await _pg_admin()
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, postgres_available: bool) -> str:
    if request.param == "postgres" and not postgres_available:
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable at {PG_HOST}:{PG_PORT} (CI=true)")
        pytest.skip(f"PostgreSQL is unreachable at {PG_HOST}:{PG_PORT}")
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_templates(
    postgres_available: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A database of each backend migrated to head once per test process:
    each test's database is a copy of it (the migrations themselves are
    tested from empty databases in test_migrations.py)."""
    sqlite_path = tmp_path_factory.mktemp("template") / "billing.db"
    templates = {"sqlite": str(sqlite_path)}
    if postgres_available:
        templates["postgres"] = f"billing_template_{uuid.uuid4().hex[:12]}"

    async def migrate_all() -> None:
        await _migrate(f"sqlite+aiosqlite:///{sqlite_path}")
        if "postgres" in templates:
            await _create_postgres_database(templates["postgres"])
            await _migrate(_postgres_url(templates["postgres"]))

    asyncio.run(migrate_all())
    try:
        yield templates
    finally:
        if "postgres" in templates:
            asyncio.run(_drop_postgres_database(templates["postgres"]))


async def _migrate(url: str) -> None:
    app = await open_app(Settings(database_url=url, migrate_on_start=True, http_addr=""))
    await app.close()


def _postgres_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def _create_postgres_database(name: str, template: str | None = None) -> None:
    admin = await _pg_admin()
    try:
        like = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{like}')
    finally:
        await admin.close()


async def _drop_postgres_database(name: str) -> None:
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def _throwaway_database(
    backend: str, tmp_path: Path, template: str | None
) -> AsyncIterator[str]:
    """A new database on `backend`, a copy of `template` or empty, dropped
    afterwards; yields its URL."""
    if backend == "sqlite":
        path = tmp_path / "billing.db"
        if template:
            with sqlite3.connect(template) as source, sqlite3.connect(path) as copy:
                source.backup(copy)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"billing_test_{uuid.uuid4().hex[:12]}"
    await _create_postgres_database(name, template)
    try:
        yield _postgres_url(name)
    finally:
        await _drop_postgres_database(name)


@pytest.fixture
async def database_url(
    backend: str, tmp_path: Path, migrated_templates: dict[str, str]
) -> AsyncIterator[str]:
    """A new database on the chosen backend, migrated to head, dropped afterwards."""
    async with _throwaway_database(backend, tmp_path, migrated_templates[backend]) as url:
        yield url


@pytest.fixture
async def empty_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database on the chosen backend, dropped afterwards."""
    async with _throwaway_database(backend, tmp_path, None) as url:
        yield url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(DEFAULT_NOW)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auth_cache_seconds=0,
        migrate_on_start=True,
        http_addr="",
        grpc_addr="127.0.0.1:0",
        # Cheap password hashes: the suite signs in often.
        password_time_cost=1,
        password_memory_kib=64,
        password_parallelism=1,
    )


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[App]:
    app = await open_app(settings, clock)
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
async def server(app: App) -> AsyncIterator[RunningServer]:
    running = await start_server(app, "127.0.0.1:0")
    try:
        yield running
    finally:
        await running.stop(0)  # and its /metrics server, when the settings ask for one


async def create_operator_key(app: App, name: str) -> str:
    """Create an operator and return a new API key of it."""
    operator = await app.store.create_operator(name, app.clock.now())
    key = mint_key()
    await app.store.add_api_key(operator.id, key.id, key.hash, key.prefix, app.clock.now())
    return key.secret


@dataclass
class Client:
    """Stubs of every billing.v1 service over one channel, sending one key."""

    channel: grpc.aio.Channel
    key: str
    kits: account_kit_pb2_grpc.AccountKitServiceStub
    plans: plan_pb2_grpc.PlanServiceStub
    subscriptions: subscription_pb2_grpc.SubscriptionServiceStub
    usage: usage_pb2_grpc.UsageServiceStub
    projects: project_pb2_grpc.ProjectServiceStub
    meters: meter_pb2_grpc.MeterServiceStub
    billing: billing_pb2_grpc.BillingServiceStub

    @property
    def auth(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.key}")]


def make_client(channel: grpc.aio.Channel, key: str) -> Client:
    return Client(
        channel=channel,
        key=key,
        kits=account_kit_pb2_grpc.AccountKitServiceStub(channel),
        plans=plan_pb2_grpc.PlanServiceStub(channel),
        subscriptions=subscription_pb2_grpc.SubscriptionServiceStub(channel),
        usage=usage_pb2_grpc.UsageServiceStub(channel),
        projects=project_pb2_grpc.ProjectServiceStub(channel),
        meters=meter_pb2_grpc.MeterServiceStub(channel),
        billing=billing_pb2_grpc.BillingServiceStub(channel),
    )


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
async def client(app: App, channel: grpc.aio.Channel) -> Client:
    """A client authenticated as operator 'acme'."""
    return make_client(channel, await create_operator_key(app, "acme"))


@pytest.fixture
async def other_client(app: App, channel: grpc.aio.Channel) -> Client:
    """A client authenticated as a second operator, 'globex'."""
    return make_client(channel, await create_operator_key(app, "globex"))


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent
