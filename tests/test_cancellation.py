"""Callers that give up mid-call (deadline passed, client gone) must not cost
anybody else their usage: every acknowledged call stays counted."""

import asyncio

import grpc
from billing.v1 import usage_pb2

from .conftest import Client
from .usage_helpers import consume, subscribe, usage_of


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
