"""Exactness under concurrency: quotas admit exactly their limit, idempotency
keys count once, across one server and across two server processes sharing
one database. On both backends."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
from billing.v1 import usage_pb2

from billing_service.clock import FixedClock

from ..cli_subprocess import serve, service_env
from ..conftest import Client, make_client
from .usage_helpers import check, consume, subscribe, usage_of

CALLS = 200
LIMIT = 50


async def _outcomes(calls: Sequence[Awaitable[object]]) -> Counter[str]:
    """Run the calls at once; count successes ("OK") and failures by code."""
    outcomes: Counter[str] = Counter()
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, grpc.aio.AioRpcError):
            outcomes[result.code().name] += 1
        elif isinstance(result, BaseException):
            raise result
        else:
            outcomes["OK"] += 1
    return outcomes


async def test_200_concurrent_consumes_admit_exactly_the_limit(client: Client) -> None:
    await subscribe(client, "hot", {"seo": LIMIT})
    outcomes = await _outcomes([consume(client, "hot") for _ in range(CALLS)])
    assert outcomes == {"OK": LIMIT, "RESOURCE_EXHAUSTED": CALLS - LIMIT}
    assert await usage_of(client, "hot") == {"seo": LIMIT}


async def test_concurrent_checks_of_one_counter_each_get_their_own_answer(
    client: Client,
) -> None:
    # Checks that arrive together are answered from one read of their
    # counter; each is still decided on its own quantity.
    await subscribe(client, "hot", {"seo": LIMIT})
    await consume(client, "hot", quantity=40)
    quantities = [1 + i % 20 for i in range(CALLS)]
    answers = await asyncio.gather(
        *(
            client.usage.CheckQuota(
                usage_pb2.CheckQuotaRequest(tenant_id="hot", primitive="seo", quantity=q),
                metadata=client.auth,
            )
            for q in quantities
        )
    )
    for quantity, answer in zip(quantities, answers, strict=True):
        assert (answer.allowed, answer.standing.used) == (quantity <= 10, 40)
    assert await usage_of(client, "hot") == {"seo": 40}


async def test_concurrent_quantities_never_overshoot(client: Client) -> None:
    await subscribe(client, "hot", {"seo": LIMIT})
    quantities = [1 + i % 7 for i in range(CALLS)]
    results = await asyncio.gather(
        *(consume(client, "hot", quantity=q) for q in quantities), return_exceptions=True
    )
    admitted = sum(
        q
        for q, r in zip(quantities, results, strict=True)
        if isinstance(r, usage_pb2.ConsumeQuotaResponse)
    )
    assert admitted <= LIMIT
    # Once 50 units were nearly reached, small requests still fill the rest.
    assert admitted >= LIMIT - 6
    assert await usage_of(client, "hot") == {"seo": admitted}


async def test_concurrent_calls_over_many_tenants_each_get_their_own_count(
    client: Client,
) -> None:
    """Once the server knows the tenants, calls that arrive together are
    decided together (on PostgreSQL, in one statement): each tenant still admits
    exactly its limit, and every answer gives the count just after that call."""
    tenants = [f"tenant-{i}" for i in range(8)]
    for tenant in tenants:
        await subscribe(client, tenant, {"seo": 6})
        await consume(client, tenant)
    calls = [consume(client, tenants[i % 8]) for i in range(8 * 8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, tenant in enumerate(tenants):
        mine = results[i::8]
        counts = sorted(
            r.standing.used for r in mine if isinstance(r, usage_pb2.ConsumeQuotaResponse)
        )
        assert counts == [2, 3, 4, 5, 6]
        refused = [r for r in mine if isinstance(r, grpc.aio.AioRpcError)]
        assert [r.code() for r in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        assert await usage_of(client, tenant) == {"seo": 6}


async def test_concurrent_recorded_usage_counts_every_unit_once(client: Client) -> None:
    tenants = [f"tenant-{i}" for i in range(4)]
    for tenant in tenants:
        await subscribe(client, tenant, {"seo": 5})
        await consume(client, tenant)
    calls = [
        client.usage.RecordUsage(
            usage_pb2.RecordUsageRequest(tenant_id=tenants[i % 4], primitive="seo", quantity=2),
            metadata=client.auth,
        )
        for i in range(4 * 6)
    ]
    results = await asyncio.gather(*calls)
    for i, tenant in enumerate(tenants):
        # RecordUsage is never refused: past the limit of 5 too.
        assert sorted(r.standing.used for r in results[i::4]) == [3, 5, 7, 9, 11, 13]
        assert await usage_of(client, tenant) == {"seo": 13}


async def test_concurrent_retries_with_one_key_count_once(client: Client) -> None:
    await subscribe(client, "hot", {"seo": LIMIT})
    responses = await asyncio.gather(*(consume(client, "hot", key="same") for _ in range(50)))
    assert len({r.usage_event_id for r in responses}) == 1
    assert sum(not r.replayed for r in responses) == 1
    assert await usage_of(client, "hot") == {"seo": 1}


async def test_concurrent_consumes_and_refunds_stay_exact(client: Client) -> None:
    await subscribe(client, "hot", {"seo": LIMIT})
    first = [await consume(client, "hot") for _ in range(20)]
    refunds = [
        client.usage.RefundUsage(
            usage_pb2.RefundUsageRequest(usage_event_id=e.usage_event_id), metadata=client.auth
        )
        for e in first
    ]
    consumes = [consume(client, "hot") for _ in range(CALLS)]
    # Interleave: the refunds run among the first consumes.
    mixed: list[Awaitable[object]] = []
    for i, call in enumerate(consumes):
        mixed.append(call)
        if i < len(refunds):
            mixed.append(refunds[i])
    results = await asyncio.gather(*mixed, return_exceptions=True)
    admitted = sum(isinstance(r, usage_pb2.ConsumeQuotaResponse) for r in results)
    # 20 consumed then all refunded: whatever the interleaving, usage is exactly
    # what the concurrent consumes were told they got, and never above the limit.
    assert LIMIT - 20 <= admitted <= LIMIT
    assert await usage_of(client, "hot") == {"seo": admitted}


@asynccontextmanager
async def _two_replicas(
    client: Client, database_url: str, log_dir: Path
) -> AsyncIterator[tuple[Client, Client]]:
    """Two `billing-service serve` processes on the test's database, and a
    client of each with `client`'s key."""
    replica_env = service_env(database_url, auth_cache_seconds="0")
    async with (
        serve(replica_env, log_dir) as first,
        serve(replica_env, log_dir) as second,
        grpc.aio.insecure_channel(first.target) as channel_a,
        grpc.aio.insecure_channel(second.target) as channel_b,
    ):
        yield make_client(channel_a, client.key), make_client(channel_b, client.key)


async def test_two_server_processes_on_one_database_admit_exactly_the_limit(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(datetime.now(UTC))  # the replicas run on the system clock
    await subscribe(client, "hot", {"seo": LIMIT})
    async with _two_replicas(client, database_url, tmp_path) as (a, b):
        calls = [consume(a if i % 2 else b, "hot") for i in range(CALLS)]
        calls += [consume(a if i % 2 else b, "hot", key=f"retry-{i % 10}") for i in range(40)]
        outcomes = await _outcomes(calls)
    # 10 distinct idempotency keys, each counted at most once.
    assert outcomes["OK"] >= LIMIT
    assert outcomes["OK"] + outcomes["RESOURCE_EXHAUSTED"] == CALLS + 40
    assert await usage_of(client, "hot") == {"seo": LIMIT}


async def test_two_server_processes_deciding_many_tenants_together_stay_exact(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    """Both replicas know the tenants, so calls arriving together are decided
    together on each, over counters the other is writing too (in the opposite
    order of tenants): nothing is refused for contention, and each tenant
    admits exactly its limit."""
    clock.set(datetime.now(UTC))  # the replicas run on the system clock
    tenants = [f"tenant-{i}" for i in range(8)]
    for tenant in tenants:
        await subscribe(client, tenant, {"seo": 20})
    async with _two_replicas(client, database_url, tmp_path) as (a, b):
        for tenant in tenants:
            await consume(a, tenant)
            await consume(b, tenant)
        calls = [consume(a, tenants[i % 8]) for i in range(8 * 20)]
        calls += [consume(b, tenants[7 - i % 8]) for i in range(8 * 20)]
        outcomes = await _outcomes(calls)
    assert outcomes == {"OK": 8 * 18, "RESOURCE_EXHAUSTED": 8 * 40 - 8 * 18}
    for tenant in tenants:
        assert await usage_of(client, tenant) == {"seo": 20}


async def test_a_check_on_one_server_process_sees_every_answer_of_another(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    """Read-your-writes across replicas: once a consume has been answered by
    one process, a check on the other counts it (on SQLite, the check's read
    is kept until the next commit anywhere: metering/sqlite/commits.py)."""
    clock.set(datetime.now(UTC))  # the replicas run on the system clock
    await subscribe(client, "watched", {"seo": 1000})
    async with _two_replicas(client, database_url, tmp_path) as (a, b):
        for replica in (a, b):
            assert (await check(replica, "watched")).standing.used == 0
        for n in range(1, 31):
            writer, reader = (a, b) if n % 2 else (b, a)
            consumed = await consume(writer, "watched", quantity=n)
            for _ in range(2):  # the second check is answered from the first's read
                checked = await check(reader, "watched")
                assert checked.standing.used == consumed.standing.used
            assert (await check(writer, "watched")).standing.used == consumed.standing.used
    assert await usage_of(client, "watched") == {"seo": 31 * 30 // 2}


async def test_checks_never_lag_what_either_server_process_has_answered(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    """Consumes on both replicas while both answer checks: every check counts
    at least every consume answered before it was sent, and at most those
    sent before it returned."""
    clock.set(datetime.now(UTC))  # the replicas run on the system clock
    await subscribe(client, "watched", {"seo": 10**6})
    async with _two_replicas(client, database_url, tmp_path) as (a, b):
        answered = sent = 0
        writing = True
        seen: list[int] = []

        async def write(replica: Client) -> None:
            nonlocal answered, sent
            for _ in range(60):
                sent += 1
                await consume(replica, "watched")
                answered += 1

        async def read(replica: Client) -> None:
            while writing:
                at_least = answered
                used = (await check(replica, "watched")).standing.used
                assert at_least <= used <= sent
                seen.append(used)

        readers = [asyncio.create_task(read(replica)) for replica in (a, b)]
        await asyncio.gather(*(write(replica) for replica in (a, b, a, b)))
        writing = False
        await asyncio.gather(*readers)
    assert len(set(seen)) > 10  # the checks did run alongside the writes
    assert await usage_of(client, "watched") == {"seo": 240}
