"""Shared pieces of the fault suite: the profile (quick in `make test`,
longer under `make soak`), service processes on the test's database, and
what every scenario checks of the stored usage afterwards."""

import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ..cli_subprocess import ServeProcess, serve, service_env
from ..conftest import Client, make_client
from ..metering.invariants import counters_equal_events

# BILLING_SOAK=1 (make soak): minutes of load; otherwise a few seconds a scenario.
SOAK = os.environ.get("BILLING_SOAK", "") not in ("", "0")
SECONDS = float(os.environ.get("BILLING_SOAK_SECONDS", "60")) if SOAK else 2.0
WORKERS = 16 if SOAK else 6
# Every RPC of the fault suite has a deadline: nothing may hang.
DEADLINE = 5.0
# What a fault may turn a call into, besides its own answers.
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


@dataclass
class Replica:
    process: ServeProcess
    client: Client


@asynccontextmanager
async def replicas(
    key: str, database_url: str, log_dir: Path, count: int = 2
) -> AsyncIterator[list[Replica]]:
    """`count` `billing-service serve` processes on the database, each with a
    client sending `key`."""
    env = service_env(database_url, auth_cache_seconds="0")
    async with AsyncExitStack() as stack:
        found: list[Replica] = []
        for _ in range(count):
            process = await stack.enter_async_context(serve(env, log_dir))
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(process.target))
            found.append(Replica(process, make_client(channel, key)))
        yield found


class Tally:
    """Status codes seen, and the rule that none is UNKNOWN or INTERNAL."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()

    async def call(self, rpc: Awaitable[object]) -> object | grpc.aio.AioRpcError:
        try:
            answer = await rpc
        except grpc.aio.AioRpcError as error:
            assert error.code() not in NEVER, error
            self.codes[error.code().name] += 1
            return error
        self.codes["OK"] += 1
        return answer

    def figures(self) -> str:
        return ", ".join(f"{code} {n}" for code, n in self.codes.most_common())


def until(seconds: float = SECONDS) -> float:
    return time.monotonic() + seconds


async def stored_usage_is_exact(database_url: str) -> None:
    """Counters equal the events, and no idempotency key is stored twice."""
    assert await counters_equal_events(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            twice = (
                await conn.execute(
                    text(
                        "SELECT operator_id, idempotency_key, COUNT(*) FROM usage_events "
                        "WHERE idempotency_key IS NOT NULL "
                        "GROUP BY operator_id, idempotency_key HAVING COUNT(*) > 1"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert twice == []


async def stored_event_ids(database_url: str) -> set[int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id FROM usage_events"))).all()
    finally:
        await engine.dispose()
    return {row[0] for row in rows}


def report(name: str, figures: str) -> None:
    """Figures of a scenario, printed under `make soak` (pytest -s)."""
    if SOAK:
        print(f"\n[soak] {name}: {figures}")
