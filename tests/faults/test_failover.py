"""Failover of a real Patroni cluster under keyed consumes: two `billing-service
serve` processes on a multi-host URL with target_session_attrs=read-write,
callers retrying each call with its idempotency key until it is answered.
The leader is killed (kill -9 of Patroni and its postmaster), or handed over
with `patronictl switchover`, and every acknowledged call must be stored
exactly once, the quota neither passed nor left short, and clients must see
nothing worse than UNAVAILABLE or DEADLINE_EXCEEDED while the service
recovers by itself. Skipped where Patroni is not installed, except under CI
(`make test` installs it)."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest
from billing.v1 import plan_pb2, usage_pb2
from grpc_health.v1 import health_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ..cli_subprocess import health_status, run_cli_ok, service_env
from ..conftest import IN_CI, Client
from ..metering.usage_helpers import subscribe, usage_of
from .harness import DEADLINE, TRANSIENT, Tally, replicas, report
from .patroni_cluster import MISSING, TTL_SECONDS, Cluster, Node, accepts_writes, patroni_cluster

pytestmark = pytest.mark.slow

SERVING = health_pb2.HealthCheckResponse.SERVING
CALLERS = 8
# The service's share of a failover: from the new primary taking writes (or the
# lease running out, whichever is later) to every process answering again.
SERVICE_RECOVERY_SECONDS = 2.0
# Calls after both processes are back, so that writes are seen to resume.
AFTER_RECOVERY_SECONDS = 2.0
TENANT = "hot"
# Never reached while the leader fails; lowered afterwards to test admission.
OPEN_QUOTA = 1_000_000
LAST_CALLS = 100


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    if MISSING:
        reason = f"{', '.join(MISSING)} not installed (make test-tools installs them)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true)")
        pytest.skip(reason)
    async with patroni_cluster() as running:
        yield running


def database_url(hosts: list[str]) -> str:
    """The multi-host form that asks for the primary (docs/postgres-production.md)."""
    query = "&".join(f"host={host}" for host in hosts)
    return f"postgresql+asyncpg://postgres@/billing?{query}&target_session_attrs=read-write"


async def create_database(leader: Node) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=leader.pg_port, user="postgres")
    try:
        await conn.execute("CREATE DATABASE billing")
    finally:
        await conn.close()


async def operator_key(url: str) -> str:
    env = service_env(url)
    await run_cli_ok(env, "migrate")
    await run_cli_ok(env, "operators", "create", "acme")
    return (await run_cli_ok(env, "keys", "create", "--operator", "acme")).last_line


@dataclass
class KeyedConsumes:
    """Callers that consume with a fresh key each time and retry that key
    until it is answered; what was acknowledged, and when writes came back."""

    clients: list[Client]
    tally: Tally = field(default_factory=Tally)
    acknowledged: set[str] = field(default_factory=set)
    exhausted: set[str] = field(default_factory=set)
    # When each process first acknowledged a call sent once a new primary took writes.
    first_ok_after: dict[int, float] = field(default_factory=dict)
    watch_from: float | None = None
    _keys: Iterator[int] = field(default_factory=itertools.count)

    async def caller(self, replica: int, stop: asyncio.Event) -> None:
        client = self.clients[replica]
        while not stop.is_set():
            key = f"call-{next(self._keys)}"
            while True:  # the same key until an answer: never dropped at the stop
                sent = time.monotonic()
                answer = await self.tally.call(
                    client.usage.ConsumeQuota(
                        usage_pb2.ConsumeQuotaRequest(
                            tenant_id=TENANT, primitive="seo", idempotency_key=key
                        ),
                        metadata=client.auth,
                        timeout=DEADLINE,
                    )
                )
                if not isinstance(answer, grpc.aio.AioRpcError):
                    self.acknowledged.add(key)
                    watched = self.watch_from is not None and sent >= self.watch_from
                    if watched and replica not in self.first_ok_after:
                        self.first_ok_after[replica] = time.monotonic()
                    break
                if answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.exhausted.add(key)
                    return
                assert answer.code() in TRANSIENT, answer
                await asyncio.sleep(0.05)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(
            *(self.caller(i % len(self.clients), stop) for i in range(CALLERS * len(self.clients)))
        )

    def recovered(self) -> bool:
        return len(self.first_ok_after) == len(self.clients)


async def wait_until(done: Callable[[], bool], running: asyncio.Task[None]) -> None:
    """Until `done()`, failing at once if the callers stopped (an assertion in one)."""
    deadline = time.monotonic() + 10 * TTL_SECONDS
    while not done():
        if running.done():
            running.result()
            raise AssertionError("the callers stopped")
        assert time.monotonic() < deadline, f"never happened: {running}"
        await asyncio.sleep(0.05)


async def stored_keys(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT idempotency_key FROM usage_events WHERE idempotency_key IS NOT NULL")
            )
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def wait_for_new_primary(cluster: Cluster, old: Node) -> float:
    """When a node other than `old` first took writes."""
    deadline = time.monotonic() + 10 * TTL_SECONDS
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            if node is not old and await accepts_writes(node):
                return time.monotonic()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no new primary:\n{cluster.logs()}")


async def set_quota(client: Client, limit: int) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="pro", quotas={"seo": limit}),
        metadata=client.auth,
        timeout=DEADLINE,
    )


async def exact_admission(work: KeyedConsumes, url: str) -> None:
    """The quota lowered to what is used plus LAST_CALLS, then callers until
    refused: exactly LAST_CALLS more admitted, and every acknowledged call
    stored once, none that was not."""
    client = work.clients[0]
    before = len(work.acknowledged)
    await set_quota(client, (await usage_of(client, TENANT))["seo"] + LAST_CALLS)
    await work.run(asyncio.Event())
    assert len(work.acknowledged) - before == LAST_CALLS, work.tally.figures()
    assert (await usage_of(client, TENANT))["seo"] == len(work.acknowledged)
    keys = await stored_keys(url)
    assert len(keys) == len(set(keys)), "a call stored twice"
    assert set(keys) == work.acknowledged


@pytest.mark.parametrize("first", ["leader", "replica"])
async def test_killed_leader_loses_no_acknowledged_call(
    cluster: Cluster, first: str, tmp_path: Path
) -> None:
    leader = cluster.leader()
    assert leader is not None
    replica = next(node for node in cluster.nodes if node is not leader)
    url = database_url(cluster.hosts(leader if first == "leader" else replica))
    await create_database(leader)
    key = await operator_key(url)
    async with replicas(key, url, tmp_path) as serving:
        work = KeyedConsumes([r.client for r in serving])
        await subscribe(work.clients[0], TENANT, {"seo": OPEN_QUOTA})
        stop = asyncio.Event()
        running = asyncio.create_task(work.run(stop))
        await wait_until(lambda: len(work.acknowledged) >= 50, running)  # load before the fault
        leader.kill()
        killed_at = time.monotonic()
        # The probes do not ask the database: an outage restarts no replica.
        for process in serving:
            assert await health_status(process.process.target) == SERVING
        work.watch_from = promoted_at = await wait_for_new_primary(cluster, leader)
        await wait_until(work.recovered, running)
        await asyncio.sleep(AFTER_RECOVERY_SECONDS)
        stop.set()
        await running
        recovered_at = max(work.first_ok_after.values())
        failover = max(TTL_SECONDS, promoted_at - killed_at)
        assert recovered_at - killed_at <= failover + SERVICE_RECOVERY_SECONDS, (
            f"recovered {recovered_at - killed_at:.1f} s after the kill, "
            f"the new primary took writes after {promoted_at - killed_at:.1f} s"
        )
        assert set(work.tally.codes) <= {"OK"} | {code.name for code in TRANSIENT}
        await exact_admission(work, url)
    report(
        f"failover, {first} first",
        f"new primary {promoted_at - killed_at:.1f} s, service {recovered_at - killed_at:.1f} s "
        f"after the kill; {work.tally.figures()}",
    )


async def test_switchover_costs_only_unavailable_retries(cluster: Cluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    assert leader is not None
    url = database_url(cluster.hosts(leader))
    await create_database(leader)
    key = await operator_key(url)
    async with replicas(key, url, tmp_path) as serving:
        work = KeyedConsumes([r.client for r in serving])
        await subscribe(work.clients[0], TENANT, {"seo": OPEN_QUOTA})
        stop = asyncio.Event()
        running = asyncio.create_task(work.run(stop))
        await wait_until(lambda: len(work.acknowledged) >= 50, running)
        await cluster.switchover()
        work.watch_from = await wait_for_new_primary(cluster, leader)
        await wait_until(work.recovered, running)
        await asyncio.sleep(AFTER_RECOVERY_SECONDS)
        stop.set()
        await running
        assert set(work.tally.codes) <= {"OK", "UNAVAILABLE"}, work.tally.figures()
        await exact_admission(work, url)
    report("switchover", work.tally.figures())
