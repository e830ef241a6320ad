"""Usage to Stripe's meters: the outbox filled in the events' own
transactions, delivered once by identifier, refunds sent as cancels, Stripe
down then back, a sender killed mid-send, and Stripe's own summaries."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from billing.v1 import meter_pb2, stripe_pb2, usage_pb2

from billing_service.api.server import start_server
from billing_service.app import App, open_app
from billing_service.clock import FixedClock
from billing_service.config import Settings
from billing_service.domain.errors import DomainError
from billing_service.stripe.client import MeterEvent, StripeApi

from ..cli_subprocess import BILLING_SERVICE, ServeProcess, serve, service_env
from ..conftest import Client, create_operator_key, make_client
from ..fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, running_fake
from ..rpc_errors import refused
from .stripe_fixtures import SECRETS_KEY, connect, fake_fixture, settings_fixture, stripe_stub

__all__ = ["fake_fixture", "settings_fixture"]


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def _sent_meter(client: Client, customer_of: str | None = "u1") -> None:
    """Stripe connected, meter 'seo' sent as 'seo_calls', and the owner's customer."""
    await connect(client)
    await client.meters.UpsertMeter(
        meter_pb2.UpsertMeterRequest(
            key="seo", display_name="SEO", unit="call", scale=1, stripe_event_name="seo_calls"
        ),
        metadata=client.auth,
    )
    if customer_of is not None:
        await stripe_stub(client).EnsureCustomer(
            stripe_pb2.EnsureCustomerRequest(user_id=customer_of), metadata=client.auth
        )


async def _consume(client: Client, user: str = "u1", **fields: Any) -> str:
    response = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(user_id=user, primitive="seo", **fields),
        metadata=client.auth,
    )
    event_id: str = response.usage_event_id
    return event_id


async def _outbox(client: Client) -> Any:
    return await stripe_stub(client).GetMeterOutbox(
        stripe_pb2.GetMeterOutboxRequest(), metadata=client.auth
    )


async def test_usage_of_a_sent_meter_reaches_stripe_once_and_refunds_cancel_it(
    client: Client, fake: FakeStripe
) -> None:
    await _sent_meter(client)
    ids = [await _consume(client) for _ in range(5)]
    ids.append(await _consume(client, quantity_decimal={"value": "2.5"}))
    await client.usage.ConsumeQuota(  # another meter: not sent
        usage_pb2.ConsumeQuotaRequest(user_id="u1", primitive="other"), metadata=client.auth
    )

    async def all_sent() -> bool:
        return len(fake.delivered()) == 6 and (await _outbox(client)).pending == 0

    await _eventually(all_sent)
    delivered = fake.delivered()
    assert set(delivered) == {f"usage_{i}" for i in ids}
    assert delivered[f"usage_{ids[-1]}"]["payload"]["value"] == "2.5"
    assert {e["payload"]["stripe_customer_id"] for e in delivered.values()} == {
        fake.state.objects[next(iter(fake.state.objects))]["id"]
    }
    assert set(fake.state.meter_event_posts.values()) == {1}

    fake.state.stream_tokens.clear()  # Stripe ends the meter event session early
    ids.append(await _consume(client))

    async def sent_again() -> bool:
        return len(fake.delivered()) == 7

    await _eventually(sent_again)

    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=ids[0]), metadata=client.auth
    )

    async def cancelled() -> bool:
        return fake.state.cancels == [f"usage_{ids[0]}"]

    await _eventually(cancelled)


async def test_two_senders_on_one_database_send_each_event_once(
    client: Client, fake: FakeStripe, settings: Settings, clock: FixedClock
) -> None:
    await _sent_meter(client)
    fake.state.meter_event_delay = 0.005
    ids = [await _consume(client) for _ in range(120)]
    second = await open_app(settings, clock)  # another replica, beside the server's own sender
    try:
        second.meter_sender.start()

        async def all_sent() -> bool:
            return len(fake.delivered()) == 120 and (await _outbox(client)).pending == 0

        await _eventually(all_sent, seconds=60)
    finally:
        await second.close()
    assert set(fake.delivered()) == {f"usage_{i}" for i in ids}
    assert set(fake.state.meter_event_posts.values()) == {1}  # no event taken by both


async def test_a_trickle_of_usage_gathers_into_few_calls(
    settings: Settings, clock: FixedClock, fake: FakeStripe
) -> None:
    """Events arriving steadily, below the sender's rate, wait for the poll
    and go together: a claim, a call and a settlement for every few events
    would cost the service, and Stripe's rate limit, more than the usage."""
    poll = 1.0
    app = await open_app(settings.model_copy(update={"stripe_outbox_poll_seconds": poll}), clock)
    try:
        running = await start_server(app, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                client = make_client(channel, await create_operator_key(app, "acme"))
                await _sent_meter(client)
                loop = asyncio.get_running_loop()
                started = loop.time()
                ids: list[str] = []
                while loop.time() - started < 2.5 * poll:
                    ids.append(await _consume(client))
                    await asyncio.sleep(0.01)
                took = loop.time() - started

                async def all_sent() -> bool:
                    return len(fake.delivered()) == len(ids)

                await _eventually(all_sent)
        finally:
            await running.stop(0)
    finally:
        await app.close()
    assert set(fake.delivered()) == {f"usage_{i}" for i in ids}
    calls = [path for _, path in fake.state.requests if path == "/v2/billing/meter_event_stream"]
    # Under 100 events a second: a claim a poll, each one call (the first
    # claim and the last may come between the polls of the usage).
    assert 1 <= len(calls) <= took / poll + 3


async def test_stripe_down_then_back_delivers_everything_once(
    client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    await _sent_meter(client)
    fake.fail(429, times=None, path_prefix="/v2/billing/meter_event_stream")
    ids = [await _consume(client) for _ in range(4)]

    async def tried() -> bool:
        return sum(fake.state.meter_event_posts.values()) == 0 and any(
            path == "/v2/billing/meter_event_stream" for _, path in fake.state.requests
        )

    await _eventually(tried)
    assert (await _outbox(client)).pending == 4
    fake.recover()

    async def all_sent() -> bool:
        clock.set(clock.now() + timedelta(minutes=10))  # past every backoff
        return len(fake.delivered()) == 4 and (await _outbox(client)).pending == 0

    await _eventually(all_sent)
    assert set(fake.delivered()) == {f"usage_{i}" for i in ids}


async def test_a_refusal_is_shown_and_an_owner_without_a_customer_is_held(
    client: Client, fake: FakeStripe
) -> None:
    await _sent_meter(client)
    fake.fail(400, times=1, path_prefix="/v2/billing/meter_event_stream")
    refused = await _consume(client)
    await _consume(client, user="nobody")  # no Stripe customer: held for one

    async def failed() -> bool:
        outbox = await _outbox(client)
        return bool(len(outbox.failed) == 1 and outbox.held == 1)

    await _eventually(failed)
    outbox = await _outbox(client)
    assert outbox.pending == 0
    assert outbox.failed[0].identifier == f"usage_{refused}"
    assert outbox.failed[0].action == "report"
    assert "Stripe refused" in outbox.failed[0].error
    assert fake.delivered() == {}

    await client.usage.RefundUsage(  # Stripe has nothing to cancel
        usage_pb2.RefundUsageRequest(usage_event_id=refused), metadata=client.auth
    )

    async def settled() -> bool:
        return (await _outbox(client)).pending == 0 and any(
            path == "/v2/billing/meter_event_stream" for _, path in fake.state.requests
        )

    await _eventually(settled)
    assert [f.identifier for f in (await _outbox(client)).failed] == [f"usage_{refused}"]
    assert fake.state.cancels == []
    assert not any("adjustments" in path for _, path in fake.state.requests)


async def test_usage_from_meters_reads_stripes_summaries(
    client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    await _sent_meter(client)
    meter_id = fake.add_meter("seo_calls")
    for _ in range(3):
        await _consume(client)

    async def all_sent() -> bool:
        return len(fake.delivered()) == 3

    await _eventually(all_sent)
    start = clock.now() - timedelta(hours=1)
    request = stripe_pb2.GetUsageFromMetersRequest(user_id="u1")
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(clock.now() + timedelta(hours=1))
    response = await stripe_stub(client).GetUsageFromMeters(request, metadata=client.auth)
    assert [(m.meter_key, m.stripe_meter_id, m.value.value) for m in response.meters] == [
        ("seo", meter_id, "3")
    ]


@pytest.mark.slow
async def test_a_sender_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    app: App, fake: FakeStripe, database_url: str, tmp_path: Path
) -> None:
    key = await create_operator_key(app, "acme")
    env = service_env(
        database_url,
        secrets_key=SECRETS_KEY,
        stripe_api_base=fake.base_url,
        stripe_outbox_lease_seconds="1",
        stripe_outbox_poll_seconds="0.05",
        stripe_meter_events_per_second="40",  # claims of 40, calls of 40 events
        log_level="DEBUG",
    )
    fake.state.meter_event_delay = 0.2
    async with serve(env, tmp_path) as first:
        async with grpc.aio.insecure_channel(first.target) as channel:
            client = make_client(channel, key)
            await _sent_meter(client)
            ids = [await _consume(client) for _ in range(80)]

            async def some_sent() -> bool:
                return len(fake.delivered()) >= 10

            await _eventually(some_sent)
        # Mid-batch: Stripe has some, the outbox still lists them.
        os.killpg(first.process.pid, signal.SIGKILL)  # the server and its jobs process
        await first.process.wait()
    delivered_at_crash = len(fake.delivered())
    assert delivered_at_crash < 80
    async with serve(env, tmp_path) as second:
        async with grpc.aio.insecure_channel(second.target) as channel:
            client = make_client(channel, key)

            async def all_sent() -> bool:
                return bool((await _outbox(client)).pending == 0)

            await _eventually(all_sent, seconds=60)
        logs = first.log() + second.log()
    assert set(fake.delivered()) == {f"usage_{i}" for i in ids}
    resent = sum(n - 1 for n in fake.state.meter_event_posts.values())
    assert resent >= 0  # a resend is refused by identifier, never counted twice
    for secret in (SECRET_KEY, WEBHOOK_SECRET, SECRETS_KEY):
        assert secret not in logs
    assert " DEBUG " in logs  # the most the service logs, and still no secret


@dataclass
class _Served:
    server: ServeProcess
    client: Client
    env: dict[str, str]
    ids: list[str]


@asynccontextmanager
async def _serving_with_usage(
    app: App, fake: FakeStripe, database_url: str, tmp_path: Path, background_jobs: str
) -> AsyncIterator["_Served"]:
    """`serve` with BILLING_BACKGROUND_JOBS=`background_jobs`, the meter sent
    to the fake Stripe and three events of it."""
    key = await create_operator_key(app, "acme")
    env = service_env(
        database_url,
        secrets_key=SECRETS_KEY,
        stripe_api_base=fake.base_url,
        stripe_outbox_poll_seconds="0.05",
        background_jobs=background_jobs,
    )
    async with (
        serve(env, tmp_path) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        client = make_client(channel, key)
        await _sent_meter(client)
        ids = [await _consume(client) for _ in range(3)]
        yield _Served(server, client, env, ids)


async def _nothing_pending(client: Client) -> None:
    async def all_sent() -> bool:
        return bool((await _outbox(client)).pending == 0)

    await _eventually(all_sent)


@pytest.mark.slow
async def test_servers_without_jobs_send_nothing_and_the_jobs_command_sends_it_all(
    app: App, fake: FakeStripe, database_url: str, tmp_path: Path
) -> None:
    async with _serving_with_usage(app, fake, database_url, tmp_path, "off") as served:
        await asyncio.sleep(1.0)  # twenty polls of a sender, had there been one
        assert fake.delivered() == {}
        with (tmp_path / "jobs.log").open("wb") as log:
            jobs = await asyncio.create_subprocess_exec(
                BILLING_SERVICE, "jobs", env=served.env, stdout=log, stderr=log
            )
        try:
            await _nothing_pending(served.client)
        finally:
            jobs.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(jobs.wait(), 60) == 0
    assert set(fake.delivered()) == {f"usage_{i}" for i in served.ids}
    assert "background jobs stopping" in (tmp_path / "jobs.log").read_text()


@pytest.mark.slow
async def test_a_server_with_inline_jobs_sends_from_its_own_process(
    app: App, fake: FakeStripe, database_url: str, tmp_path: Path
) -> None:
    async with _serving_with_usage(app, fake, database_url, tmp_path, "inline") as served:
        await _nothing_pending(served.client)
        log = served.server.log()
    assert set(fake.delivered()) == {f"usage_{i}" for i in served.ids}
    assert "background jobs running in process" not in log  # no process of their own


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no storage involved
async def test_the_direct_meter_stream_sends_what_the_library_sends(
    clock: FixedClock, backend: str
) -> None:
    events = [
        MeterEvent("seo_calls", f"usage_{n}", "cus_1", Decimal(value), clock.now())
        for n, value in enumerate(("1", "2.5", "0.000001"))
    ]
    received, failures = [], []
    for direct in (True, False):
        with running_fake() as fake:
            api = StripeApi(fake.base_url, 0, 2, direct_stream=direct)
            try:
                await api.send_meter_events(SECRET_KEY, events)
                fake.state.stream_tokens.clear()  # an expired session is renewed
                await api.send_meter_events(SECRET_KEY, events[:1])
                seen = []
                for status in (429, 500, 400):
                    fake.fail(status, times=1, path_prefix="/v2/billing/meter_event_stream")
                    with pytest.raises(DomainError) as raised:
                        await api.send_meter_events(SECRET_KEY, events)
                    seen.append(type(raised.value).__name__)
                failures.append(seen)
            finally:
                await api.close()
            received.append((fake.delivered(), dict(fake.state.meter_event_posts)))
    assert received[0] == received[1]
    assert failures[0] == failures[1] == ["StripeUnavailable", "StripeUnavailable", "StripeRefused"]
    assert received[0][0]["usage_1"]["payload"] == {"stripe_customer_id": "cus_1", "value": "2.5"}


async def test_a_max_meter_cannot_be_linked_to_a_stripe_meter(
    client: Client, fake: FakeStripe
) -> None:
    """Stripe sums, counts or keeps the last value: a max meter's readings
    5, 9 and 3 would be billed as 17 where the summary prices 9."""
    await _sent_meter(client)

    def upsert(aggregation: meter_pb2.Aggregation, key: str = "disk") -> Any:
        return client.meters.UpsertMeter(
            meter_pb2.UpsertMeterRequest(
                key=key, display_name="Disk", unit="GB", scale=0,
                aggregation=aggregation, stripe_event_name="disk_gb",
            ),
            metadata=client.auth,
        )  # fmt: skip

    failure = await refused(upsert(meter_pb2.AGGREGATION_MAX))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION, failure
    assert "sum or last" in failure.message
    meters = await client.meters.ListMeters(meter_pb2.ListMetersRequest(), metadata=client.auth)
    assert "disk" not in {m.key for m in meters.meters}  # nothing written
    last = await upsert(meter_pb2.AGGREGATION_LAST, key="disk_last")
    assert last.meter.stripe_event_name == "disk_gb"
