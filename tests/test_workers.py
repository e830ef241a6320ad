"""`billing-service serve` with several worker processes on one address."""

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from billing_service.clock import FixedClock

from .cli_subprocess import serve, service_env
from .conftest import Client, make_client
from .usage_helpers import consume, subscribe, usage_of

pytestmark = pytest.mark.slow


async def test_two_workers_share_the_address_count_exactly_and_stop_on_sigterm(
    client: Client, database_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    clock.set(datetime.now(UTC))  # the workers run on the system clock
    await subscribe(client, "hot", {"seo": 30})
    async with serve(
        service_env(database_url, auth_cache_seconds="0", workers="2"), tmp_path
    ) as service:
        # Separate channels: separate connections, which the kernel spreads.
        channels = [grpc.aio.insecure_channel(service.target) for _ in range(4)]
        try:
            clients = [make_client(channel, client.key) for channel in channels]
            results = await asyncio.gather(
                *(consume(clients[i % 4], "hot") for i in range(60)), return_exceptions=True
            )
        finally:
            for channel in channels:
                await channel.close()
        service.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(service.process.wait(), 20) == 0
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(admitted) == 30
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert await usage_of(client, "hot") == {"seo": 30}
