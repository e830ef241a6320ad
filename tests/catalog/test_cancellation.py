"""Callers that give up mid-call (deadline passed, client gone) must not cost
anybody else their usage: every acknowledged call stays counted."""

import asyncio

import grpc
from billing.v1 import usage_pb2

from ..conftest import Client
from ..metering.usage_helpers import consume, subscribe, usage_of


async def test_cancelled_calls_never_lose_acknowledged_usage(client: Client) -> None:
    await subscribe(client, "t1", {"seo": 1_000_000})
    acknowledged = 0
    gave_up = 0

    async def impatient_caller(offset: int) -> None:
        nonlocal acknowledged, gave_up
        for call in range(30):
            # Deadlines around a call's own duration, so that many calls are
            # cancelled on the server while in the database.
            deadline = 0.0005 * ((offset + call) % 8 + 1)
            try:
                await client.usage.ConsumeQuota(
                    usage_pb2.ConsumeQuotaRequest(tenant_id="t1", primitive="seo"),
                    metadata=client.auth,
                    timeout=deadline,
                )
                acknowledged += 1
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
                gave_up += 1

    await asyncio.gather(*(impatient_caller(i) for i in range(8)))
    assert gave_up > 0
    for _ in range(20):
        await consume(client, "t1")
    acknowledged += 20
    used = (await usage_of(client, "t1"))["seo"]
    # A call that timed out may or may not have been counted (retry it with an
    # idempotency key to know); every answered one must be.
    assert acknowledged <= used <= acknowledged + gave_up


async def test_checks_cancelled_mid_read_leave_the_counts_as_they_were(client: Client) -> None:
    # Lone checks first: on PostgreSQL a lone check reads in its caller's
    # coroutine, so a deadline that passes mid-read cancels the statement
    # (asyncpg cancelled 5 of 200 in a run on 2026-12-01). gRPC rounds a
    # deadline up to whole milliseconds, which a quick lone check may beat
    # every time; then bursts, where the later calls of each wait behind the
    # earlier ones and pass their deadlines wherever they are.
    await subscribe(client, "t1", {"seo": 1_000})
    for _ in range(5):
        await consume(client, "t1")
    request = usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo")

    async def check(deadline: float) -> bool:
        """Whether the check was answered (it gave up otherwise)."""
        try:
            reply = await client.usage.CheckQuota(request, metadata=client.auth, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
            return False
        assert reply.allowed and reply.standing.used == 5
        return True

    outcomes = [await check(0.0002 * (call % 8 + 1)) for call in range(200)]
    for _ in range(20):
        outcomes += await asyncio.gather(*(check(0.001 * (i % 8 + 1)) for i in range(16)))
    assert not all(outcomes)

    await consume(client, "t1")
    reply = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo"), metadata=client.auth
    )
    assert reply.standing.used == 6
    assert (await usage_of(client, "t1"))["seo"] == 6


async def test_writes_cancelled_mid_statement_are_counted_once_or_not_at_all(
    client: Client,
) -> None:
    # Lone calls first: on PostgreSQL a lone ConsumeQuota is recorded in its
    # caller's coroutine, so a deadline that passes mid-statement cancels it;
    # then bursts, whose later calls surely pass their deadlines (gRPC's are
    # whole milliseconds, which a quick lone write may beat every time). Each
    # write is then done or not, and the counter (what CheckQuota reads) and
    # the events (what the usage report sums) still agree.
    await subscribe(client, "t1", {"seo": 1_000})
    request = usage_pb2.ConsumeQuotaRequest(tenant_id="t1", primitive="seo")

    async def consume_within(deadline: float) -> bool:
        """Whether the call was answered (it gave up otherwise)."""
        try:
            await client.usage.ConsumeQuota(request, metadata=client.auth, timeout=deadline)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
            return False
        return True

    outcomes = [await consume_within(0.0003 * (call % 8 + 1)) for call in range(200)]
    for _ in range(10):
        outcomes += await asyncio.gather(*(consume_within(0.001 * (i % 8 + 1)) for i in range(16)))
    acknowledged, gave_up = outcomes.count(True), outcomes.count(False)
    assert gave_up > 0

    await consume(client, "t1")
    acknowledged += 1
    reply = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(tenant_id="t1", primitive="seo"), metadata=client.auth
    )
    used = (await usage_of(client, "t1"))["seo"]
    assert reply.standing.used == used
    assert acknowledged <= used <= acknowledged + gave_up
