"""The meter sender's cursor over usage_events: events committed in another
order than their ids are each sent once, whatever the interleaving, and a
refund's cancel never goes before its event's report."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from billing.v1 import meter_pb2, stripe_pb2, usage_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.storage.engine import create_engines
from billing_service.stripe.outbox import OutboxStore

from ..cli_subprocess import serve, service_env
from ..conftest import Client, create_operator_key, make_client
from ..fake_stripe import FakeStripe
from .stripe_fixtures import SECRETS_KEY, connect, fake_fixture, settings_fixture, stripe_stub

__all__ = ["fake_fixture", "settings_fixture"]

STREAM = "/v2/billing/meter_event_stream"


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def _sent_meter(client: Client, owners: list[str]) -> None:
    await connect(client)
    await client.meters.UpsertMeter(
        meter_pb2.UpsertMeterRequest(
            key="seo", display_name="SEO", unit="call", scale=1, stripe_event_name="seo_calls"
        ),
        metadata=client.auth,
    )
    for owner in owners:
        await stripe_stub(client).EnsureCustomer(
            stripe_pb2.EnsureCustomerRequest(user_id=owner), metadata=client.auth
        )


async def _consume(client: Client, user: str = "u1") -> str:
    response = await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(user_id=user, primitive="seo"), metadata=client.auth
    )
    return str(response.usage_event_id)


async def _pending(client: Client) -> int:
    outbox = await stripe_stub(client).GetMeterOutbox(
        stripe_pb2.GetMeterOutboxRequest(), metadata=client.auth
    )
    return int(outbox.pending)


# A copy of an event, as another replica's transaction would write it.
_COPY = text(
    "INSERT INTO usage_events (id, operator_id, tenant_id, primitive, quantity, occurred_at,"
    " recorded_at, used_after, window_start, window_end)"
    " SELECT nextval(pg_get_serial_sequence('usage_events', 'id')), operator_id, tenant_id,"
    " primitive, quantity, occurred_at, recorded_at, used_after, window_start, window_end"
    " FROM usage_events WHERE id = :id RETURNING id"
)


# SQLite has one writer at a time: its ids are in commit order.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_event_committed_after_later_ids_is_sent_once(
    client: Client, fake: FakeStripe, database_url: str
) -> None:
    """PostgreSQL: a transaction that drew its id first and commits last."""
    await _sent_meter(client, ["u1", "u2"])
    # Two owners: copies of one owner's event would wait on each other's
    # lock of its daily total.
    first, second = await _consume(client, "u1"), await _consume(client, "u2")

    async def both_sent() -> bool:
        return len(fake.delivered()) == 2

    await _eventually(both_sent)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as slow:
            slow_id = (await slow.execute(_COPY, {"id": int(first)})).scalar_one()
            async with engine.begin() as fast:
                fast_id = (await fast.execute(_COPY, {"id": int(second)})).scalar_one()
            assert fast_id > slow_id
            await asyncio.sleep(0.5)  # the sender polls meanwhile
            assert f"usage_{fast_id}" not in fake.delivered()
            assert await _pending(client) == 1  # the later id waits, it is not passed over
            await slow.commit()
    finally:
        await engine.dispose()

    async def all_sent() -> bool:
        return len(fake.delivered()) == 4 and await _pending(client) == 0

    await _eventually(all_sent)
    assert set(fake.delivered()) == {f"usage_{i}" for i in (first, second, slow_id, fast_id)}
    assert set(fake.state.meter_event_posts.values()) == {1}


async def test_a_refund_before_its_event_is_sent_cancels_after_the_report(
    client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    await _sent_meter(client, ["u1"])
    fake.fail(429, times=None, path_prefix=STREAM)
    kept, refunded = await _consume(client), await _consume(client)
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=refunded), metadata=client.auth
    )
    await asyncio.sleep(0.3)  # reads and cancels come due while Stripe is down
    assert fake.state.cancels == []
    fake.recover()

    async def cancelled() -> bool:
        clock.set(clock.now() + timedelta(minutes=10))  # past every backoff
        return fake.state.cancels == [f"usage_{refunded}"] and await _pending(client) == 0

    await _eventually(cancelled)
    assert set(fake.delivered()) == {f"usage_{kept}", f"usage_{refunded}"}
    outbox = await stripe_stub(client).GetMeterOutbox(
        stripe_pb2.GetMeterOutboxRequest(), metadata=client.auth
    )
    assert list(outbox.failed) == []


async def test_a_cancel_waiting_for_the_cursor_is_neither_due_nor_claimed(
    app: App, client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    """The sender asks whether a claim would take anything before claiming
    (a write): a cancel whose event the cursor has not read says no."""
    await app.meter_sender.stop()  # the test sends by hand
    await _sent_meter(client, ["u1"])
    refunded = await _consume(client)
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=refunded), metadata=client.auth
    )
    writer, reader = create_engines(app.settings.database_url)
    outbox = OutboxStore(writer, reader)
    try:
        assert not await outbox.any_due(clock.now())
        assert await outbox.claim(clock.now(), timedelta(seconds=2), 10) == []

        # The report, then its cancel. On PostgreSQL the cursor reads below
        # the oldest transaction running anywhere in the cluster, which
        # another test's may hold back for a moment: sends add up to two.
        sent = [0]

        async def both_sent() -> bool:
            sent[0] += await app.meter_sender.send_due()
            return sent[0] >= 2

        await _eventually(both_sent)
        assert sent[0] == 2
        assert set(fake.delivered()) == {f"usage_{refunded}"}
        assert fake.state.cancels == [f"usage_{refunded}"]
        assert not await outbox.any_due(clock.now())
    finally:
        await outbox.close()


async def test_two_servers_writing_at_once_have_each_event_sent_once(
    app: App, fake: FakeStripe, database_url: str, tmp_path: Path
) -> None:
    """Two server processes draw ids in blocks and commit in any order while
    the jobs process reads behind them."""
    key = await create_operator_key(app, "acme")
    owners = [f"u{n}" for n in range(8)]
    env = service_env(
        database_url,
        secrets_key=SECRETS_KEY,
        stripe_api_base=fake.base_url,
        stripe_outbox_poll_seconds="0.05",
        stripe_meter_events_per_second="300",  # reads of 300, while the writes go on
        workers="2",
    )
    async with serve(env, tmp_path) as served:
        channels = [grpc.aio.insecure_channel(served.target) for _ in range(4)]
        try:
            clients = [make_client(channel, key) for channel in channels]
            await _sent_meter(clients[0], owners)
            calls = [
                _consume(clients[n % len(clients)], owners[n % len(owners)]) for n in range(600)
            ]
            ids = await asyncio.gather(*calls)

            async def all_sent() -> bool:
                return len(fake.delivered()) == len(ids) and await _pending(clients[0]) == 0

            await _eventually(all_sent, seconds=60)
        finally:
            for channel in channels:
                await channel.close()
    assert set(fake.delivered()) == {f"usage_{i}" for i in ids}
    assert set(fake.state.meter_event_posts.values()) == {1}
