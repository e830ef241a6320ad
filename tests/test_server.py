"""The gRPC server: health, reflection (read by the real grpcurl), and graceful
shutdown, in process and as a real `billing-service serve` process."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from billing.v1 import plan_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from billing_service.api.server import start_server
from billing_service.api.services import SERVICE_NAMES
from billing_service.app import App, open_app
from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.grpc_core import GRPC_EXPERIMENTS

from .cli_subprocess import ServeProcess, run_cli_ok, serve, service_env
from .conftest import create_operator_key, make_client

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH = "grpc.health.v1.Health"
REFLECTION = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
GRACE_SECONDS = 20


async def grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        GRPCURL,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, f"grpcurl {args}: {stderr.decode()}"
    return stdout.decode()


async def prepared_database(database_url: str) -> str:
    """Migrate the database and give it an operator 'acme'; return its key."""
    app = await open_app(Settings(database_url=database_url, migrate_on_start=True))
    try:
        return await create_operator_key(app, "acme")
    finally:
        await app.close()


@pytest.fixture
async def serving(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[ServeProcess, str]]:
    """A `billing-service serve` process on a prepared database, and a key."""
    key = await prepared_database(database_url)
    env = service_env(
        database_url,
        auth_cache_seconds="0",
        shutdown_grace_seconds=str(GRACE_SECONDS),
    )
    async with serve(env, tmp_path) as process:
        yield process, key


# -- in process --------------------------------------------------------------


async def test_health_reports_the_server_and_every_service_serving(
    channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    for service in ("", *SERVICE_NAMES):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == SERVING, service


async def test_health_of_an_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="billing.v1.NoSuchService"))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "method", ["/billing.v1.UsageService/NoSuchMethod", "/billing.v1.NoSuchService/CheckQuota"]
)
async def test_an_unknown_method_is_unimplemented(channel: grpc.aio.Channel, method: str) -> None:
    # Every method is served through its service's generic handler
    # (api/server.py): what none of them knows is UNIMPLEMENTED, as gRPC says.
    call = channel.unary_unary(method)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")

    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_stopping_flips_health_to_not_serving_for_a_watcher(app: App) -> None:
    running = await start_server(app, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            updates = aiter(watch)
            assert (await anext(updates)).status == SERVING

            stopping = asyncio.create_task(running.stop(GRACE_SECONDS))
            assert (await anext(updates)).status == NOT_SERVING

            # The watch is itself an RPC in flight: ending it lets the stop
            # finish well before the grace period.
            watch.cancel()
            await asyncio.wait_for(stopping, GRACE_SECONDS / 2)
    finally:
        await running.server.stop(None)


async def test_a_stopped_server_refuses_new_calls(app: App) -> None:
    running = await start_server(app, "127.0.0.1:0")
    key = await create_operator_key(app, "acme")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        client = make_client(channel, key)
        await client.plans.ListPlans(plan_pb2.ListPlansRequest(), metadata=client.auth)

        await running.stop(GRACE_SECONDS)

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.plans.ListPlans(
                plan_pb2.ListPlansRequest(), metadata=client.auth, timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_aged_connection_is_replaced_without_failing_a_call(
    settings: Settings, clock: FixedClock
) -> None:
    # The server asks the client to reconnect (GOAWAY) when the connection
    # is 0.3 s old; the client moves to a new one between calls.
    app = await open_app(
        settings.model_copy(update={"grpc_max_connection_age_seconds": 0.3}), clock
    )
    running = await start_server(app, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            states: list[grpc.ChannelConnectivity] = []

            async def record_states() -> None:
                state = channel.get_state()
                while True:
                    states.append(state)
                    await channel.wait_for_state_change(state)
                    state = channel.get_state()

            recorder = asyncio.create_task(record_states())
            health = health_pb2_grpc.HealthStub(channel)
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.5
            try:
                while loop.time() < until:
                    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    assert response.status == SERVING
                    await asyncio.sleep(0.01)
            finally:
                recorder.cancel()

        ready = grpc.ChannelConnectivity.READY
        assert states.count(ready) >= 2, states  # connected, then connected again
    finally:
        await running.server.stop(None)
        await app.close()


# -- as a process ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_reflection_lists_every_service_to_grpcurl(
    serving: tuple[ServeProcess, str],
) -> None:
    process, _ = serving

    services = (await grpcurl("-plaintext", process.target, "list")).split()
    methods = (
        await grpcurl("-plaintext", process.target, "list", "billing.v1.PlanService")
    ).split()

    assert sorted(services) == sorted([*SERVICE_NAMES, HEALTH, *REFLECTION])
    assert sorted(methods) == [
        f"billing.v1.PlanService.{name}"
        for name in ("ArchivePlan", "GetPlan", "ListPlans", "UpsertPlan")
    ]


@pytest.mark.slow
async def test_a_cli_key_works_through_grpcurl_against_serve(tmp_path: Path) -> None:
    """The whole operator journey with real processes only: create an
    operator and a key with the CLI, start the server, call it with grpcurl."""
    env = service_env(f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    env.pop("GRPC_EXPERIMENTS", None)
    await run_cli_ok(env, "migrate")
    await run_cli_ok(env, "operators", "create", "acme")
    key = (await run_cli_ok(env, "keys", "create", "--operator", "acme")).last_line

    async with serve(env, tmp_path) as process:
        answer = await grpcurl(
            "-plaintext",
            "-H",
            f"authorization: Bearer {key}",
            "-d",
            json.dumps({"key": "pro", "name": "Pro", "quotas": {"seo": "10"}}),
            process.target,
            "billing.v1.PlanService/UpsertPlan",
        )
        listed = await grpcurl(
            "-plaintext",
            "-H",
            f"authorization: Bearer {key}",
            process.target,
            "billing.v1.PlanService/ListPlans",
        )

        # The server says which gRPC core settings it runs on (grpc_core.py).
        assert f"(GRPC_EXPERIMENTS={GRPC_EXPERIMENTS!r})" in process.log()

    upserted = json.loads(answer)
    assert upserted["created"] is True
    assert upserted["plan"]["quotas"] == {"seo": "10"}
    assert [p["key"] for p in json.loads(listed)["plans"]] == ["pro"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sigterm_exits_zero(serving: tuple[ServeProcess, str]) -> None:
    process, _ = serving

    process.send_sigterm()

    # Nothing is in flight, so it need not use the grace period, let alone exceed it.
    assert await process.wait_exit(GRACE_SECONDS) == 0, process.log()
    assert "shutting down" in process.log()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_sigterm_lets_an_in_flight_rpc_finish(
    serving: tuple[ServeProcess, str], database_url: str
) -> None:
    """An RPC is held in flight on a table lock the test owns; SIGTERM arrives;
    health turns NOT_SERVING; the lock is released; the RPC still succeeds and
    the process then exits 0."""
    process, key = serving
    url = make_url(database_url)
    locker = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE plans IN ACCESS EXCLUSIVE MODE")
        async with grpc.aio.insecure_channel(process.target) as channel:
            client = make_client(channel, key)
            upsert = asyncio.ensure_future(
                client.plans.UpsertPlan(
                    plan_pb2.UpsertPlanRequest(key="pro", name="Pro"), metadata=client.auth
                )
            )
            await wait_for_lock_waiter(locker, "plans")
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            updates = aiter(watch)
            assert (await anext(updates)).status == SERVING

            process.send_sigterm()

            assert (await anext(updates)).status == NOT_SERVING
            watch.cancel()
            assert not upsert.done()
            await lock.commit()
            response = await asyncio.wait_for(upsert, GRACE_SECONDS)
        assert response.created
        assert await process.wait_exit(GRACE_SECONDS) == 0, process.log()
        stored = await locker.fetchval("SELECT name FROM plans WHERE key = 'pro'")
        assert stored == "Pro"
    finally:
        await locker.close()


async def wait_for_lock_waiter(conn: asyncpg.Connection, table: str) -> None:
    """Until another session waits for a lock on `table`."""
    for _ in range(600):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted", table
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no RPC came to wait on table {table}")
