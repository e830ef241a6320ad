"""The service behind a real PgBouncer in transaction mode (tests/pgbouncer.py),
where consecutive transactions of one connection run on different server
connections: with BILLING_DATABASE_POOLER=transaction no prepared statement
outlives its transaction, in `migrate`, the administration commands, `serve`
with two server processes and its background jobs, and the metering core
under concurrency, which admits exactly the quota."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.domain.policy import enforcement
from billing_service.metering.batch_forming import UntilCount
from billing_service.metering.batcher import Batcher
from billing_service.metering.engines import open_backend
from billing_service.metering.quota_engine import QuotaEngine
from billing_service.metering.router import FixedRouter, Route
from billing_service.metering.terms_cache import TermsCache

from .cli_subprocess import run_cli, run_cli_ok, serve, service_env
from .conftest import Client, make_client
from .end_users.test_workers import _started, _until
from .metering.invariants import counters_equal_events
from .metering.test_routes_agree import STEPS, Run
from .metering.usage_helpers import consume, subscribe, usage_of
from .pgbouncer import pgbouncer, through

__all__ = ["pgbouncer"]  # the fixture, used by name


@pytest.fixture
def backend() -> str:
    """PostgreSQL alone: the pooler stands in front of it."""
    return "postgres"


@pytest.fixture
def pooled_url(database_url: str, pgbouncer: int) -> str:
    return through(pgbouncer, database_url)


@pytest.fixture
def settings(pooled_url: str) -> Settings:
    """The suite's settings, through the pooler (the app, server and client
    fixtures use them)."""
    return Settings(
        database_url=pooled_url,
        database_pooler="transaction",
        auth_cache_seconds=0,
        migrate_on_start=True,
        http_addr="",
        grpc_addr="127.0.0.1:0",
        password_time_cost=1,
        password_memory_kib=64,
        password_parallelism=1,
    )


async def test_migrate_and_the_administration_commands_through_a_transaction_pooler(
    empty_database_url: str, pgbouncer: int
) -> None:
    env = service_env(through(pgbouncer, empty_database_url), database_pooler="transaction")
    for _ in range(2):  # from empty, then already at head
        migrated = await run_cli_ok(env, "migrate")
        assert migrated.last_line.startswith("database at revision ")
    for name in ("acme", "globex", "initech"):
        await run_cli_ok(env, "operators", "create", name)
    key = await run_cli_ok(env, "keys", "create", "--operator", "acme")
    listed = await run_cli_ok(env, "operators", "list")
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == [
        "acme",
        "globex",
        "initech",
    ]
    assert "prepared statement" not in key.stderr


async def test_statement_cache_size_in_the_url_reaches_asyncpg_as_a_number(
    empty_database_url: str, pgbouncer: int
) -> None:
    url = through(pgbouncer, empty_database_url) + "?statement_cache_size=0"
    env = service_env(url)
    await run_cli_ok(env, "migrate")
    created = await run_cli(env, "operators", "create", "acme")
    assert created.returncode == 0, created


async def test_two_serve_processes_through_the_pooler_admit_exactly_the_quota(
    client: Client, pooled_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(datetime.now(UTC))  # the servers run on the system clock
    await subscribe(client, "hot", {"seo": 40})
    env = service_env(
        pooled_url, database_pooler="transaction", auth_cache_seconds="0", workers="2"
    )
    env.pop("GRPC_EXPERIMENTS", None)
    async with serve(env, tmp_path) as service:
        await _until(lambda: _started(service.log()), within_seconds=180)
        channels = [grpc.aio.insecure_channel(service.target) for _ in range(6)]
        try:
            clients = [make_client(channel, client.key) for channel in channels]
            results = await asyncio.gather(
                *(consume(clients[i % 6], "hot", key=f"k{i % 90}") for i in range(120)),
                return_exceptions=True,
            )
        finally:
            for channel in channels:
                await channel.close()
        log = service.log()
    refused = [r for r in results if isinstance(r, BaseException)]
    assert {r.code() for r in refused if isinstance(r, grpc.aio.AioRpcError)} == {
        grpc.StatusCode.RESOURCE_EXHAUSTED
    }, refused[:3]
    assert await usage_of(client, "hot") == {"seo": 40}
    assert "prepared statement" not in log and "Traceback" not in log, log


async def test_the_metering_core_through_the_pooler_counts_every_call_once(
    client: Client, database_url: str
) -> None:
    await subscribe(client, "t", {"seo": 1000})
    calls = [consume(client, "t", key=f"call-{i % 150}") for i in range(300)]
    await asyncio.gather(*calls)
    assert await usage_of(client, "t") == {"seo": 150}
    assert await counters_equal_events(database_url)  # read directly


@pytest.mark.parametrize(
    ("route", "burst", "processes"), [(Route.QUEUED, 6, 1), (Route.CONDITIONAL, 4, 2)]
)
async def test_every_route_through_the_pooler_gives_the_models_answers(
    app: App, clock: FixedClock, database_url: str, route: Route, burst: int, processes: int
) -> None:
    """The differential test's run, shortened, through the pooler."""
    batchers = [
        Batcher(
            open_backend(app.settings.database_url),
            TermsCache(enforcement),
            FixedRouter(route),
            UntilCount(burst),
        )
        for _ in range(processes)
    ]
    run = Run(app, clock, [QuotaEngine(app.store, b, clock) for b in batchers], seed=1)
    try:
        await run.setup()
        for _ in range(STEPS // 2):
            await run.step(burst, route)
    finally:
        for batcher in batchers:
            await batcher.close()
    assert await counters_equal_events(database_url)
