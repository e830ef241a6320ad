"""The fault suite's failures: a service process killed under load, the
database's connections terminated, SQLite's write lock held by another
process. Quick in `make test`; longer under `make soak`."""

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import asyncpg
import grpc
import pytest
from billing.v1 import usage_pb2
from sqlalchemy.engine import make_url

from ..conftest import Client
from ..metering.usage_helpers import subscribe, usage_of
from .harness import DEADLINE, SECONDS, WORKERS, Tally, replicas, report, stored_usage_is_exact


async def consume_until_answered(
    replicas_: list[Client], key: str, tally: Tally, tenant: str = "hot"
) -> None:
    """ConsumeQuota with `key` on each replica in turn until one answers."""
    for attempt in range(200):
        replica = replicas_[attempt % len(replicas_)]
        answer = await tally.call(
            replica.usage.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(
                    tenant_id=tenant, primitive="seo", idempotency_key=key
                ),
                metadata=replica.auth,
                timeout=DEADLINE,
            )
        )
        if not isinstance(answer, grpc.aio.AioRpcError):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} never answered")


async def test_kill_9_under_load_loses_and_doubles_nothing(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    await subscribe(client, "hot", {"seo": 10**9})
    tally = Tally()
    keys = [f"req-{i}" for i in range(60 * WORKERS)]
    async with replicas(client.key, database_url, tmp_path) as (a, b):
        victim, survivor = a, b

        async def kill_soon() -> None:
            await asyncio.sleep(0.3)
            os.kill(victim.process.process.pid, signal.SIGKILL)

        await asyncio.gather(
            kill_soon(),
            *(
                consume_until_answered([victim.client, survivor.client][i % 2 :], key, tally)
                for i, key in enumerate(keys)
            ),
        )
    assert (await usage_of(client, "hot"))["seo"] == len(keys)
    await stored_usage_is_exact(database_url)
    report("kill -9", f"{len(keys)} keys: {tally.figures()}")


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_terminated_connections_are_unavailable_then_recovered(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    """pg_terminate_backend under load: every answer is its own or
    UNAVAILABLE, none hangs, and the service recovers without a restart."""
    await subscribe(client, "hot", {"seo": 10**9})
    first = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(tenant_id="hot", primitive="seo"), metadata=client.auth
    )
    tally = Tally()
    database = make_url(database_url).database
    async with replicas(client.key, database_url, tmp_path, count=1) as (replica,):
        stub, auth = replica.client.usage, replica.client.auth
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + SECONDS

        async def load() -> None:
            while loop.time() < stop_at:
                for rpc in (
                    stub.ConsumeQuota(
                        usage_pb2.ConsumeQuotaRequest(tenant_id="hot", primitive="seo"),
                        metadata=auth,
                        timeout=DEADLINE,
                    ),
                    stub.CheckQuota(
                        usage_pb2.CheckQuotaRequest(tenant_id="hot", primitive="seo"),
                        metadata=auth,
                        timeout=DEADLINE,
                    ),
                    stub.GetUsage(
                        usage_pb2.GetUsageRequest(tenant_id="hot"), metadata=auth, timeout=DEADLINE
                    ),
                    stub.RefundUsage(
                        usage_pb2.RefundUsageRequest(usage_event_id=first.usage_event_id),
                        metadata=auth,
                        timeout=DEADLINE,
                    ),
                ):
                    answer = await tally.call(rpc)
                    if isinstance(answer, grpc.aio.AioRpcError):
                        assert answer.code() is grpc.StatusCode.UNAVAILABLE, answer

        async def terminate() -> int:
            admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
            terminated = 0
            try:
                while loop.time() < stop_at:
                    await asyncio.sleep(0.2)
                    terminated += len(
                        await admin.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1 AND pid <> pg_backend_pid()",
                            database,
                        )
                    )
            finally:
                await admin.close()
            return terminated

        terminated, *_ = await asyncio.gather(terminate(), *(load() for _ in range(WORKERS)))
        # Recovered without a restart: every call is served again.
        for _ in range(3):
            await stub.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(tenant_id="hot", primitive="seo"),
                metadata=auth,
                timeout=DEADLINE,
            )
    assert terminated and tally.codes["UNAVAILABLE"] > 0, tally.figures()
    await stored_usage_is_exact(database_url)
    report("pg_terminate_backend", f"{terminated} connections terminated: {tally.figures()}")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlites_lock_held_by_another_process(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    """Another process holds SQLite's write lock for a while: calls answer
    UNAVAILABLE (safe to retry) or succeed once it is released; none hangs."""
    await subscribe(client, "hot", {"seo": 10**9})
    path = make_url(database_url).database
    assert path is not None
    hold = 0.5 if not SECONDS > 2 else 3.0
    script = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(float(sys.argv[2])); "
        "c.execute('ROLLBACK')"
    )
    tally = Tally()
    keys = [f"req-{i}" for i in range(20 * WORKERS)]
    async with replicas(client.key, database_url, tmp_path, count=1) as (replica,):
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, path, str(hold), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"held"
            await asyncio.gather(
                *(consume_until_answered([replica.client], key, tally) for key in keys)
            )
        finally:
            await asyncio.wait_for(holder.wait(), 30)
    assert (await usage_of(client, "hot"))["seo"] == len(keys)
    assert set(tally.codes) <= {"OK", "UNAVAILABLE"}
    with sqlite3.connect(path) as conn:
        conn.execute("SELECT 1")
    await stored_usage_is_exact(database_url)
    report("SQLite lock held", f"{hold} s, {len(keys)} keys: {tally.figures()}")
