"""Usage to Stripe that cannot go at once: usage of an owner without a
Stripe customer held until it has one, and refunds after Stripe's 24-hour
cancel window listed for the operator to credit."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from billing.v1 import meter_pb2, stripe_pb2, usage_pb2

from billing_service.clock import FixedClock

from ..conftest import Client
from ..fake_stripe import FakeStripe
from .stripe_fixtures import connect, fake_fixture, settings_fixture, stripe_stub

__all__ = ["fake_fixture", "settings_fixture"]


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def _sent_meter(client: Client) -> None:
    """Stripe connected, meter 'seo' sent as 'seo_calls', u1's customer."""
    await connect(client)
    await client.meters.UpsertMeter(
        meter_pb2.UpsertMeterRequest(
            key="seo", display_name="SEO", unit="call", scale=0, stripe_event_name="seo_calls"
        ),
        metadata=client.auth,
    )
    await _ensure_customer(client, "u1")


async def _ensure_customer(client: Client, user: str) -> None:
    await stripe_stub(client).EnsureCustomer(
        stripe_pb2.EnsureCustomerRequest(user_id=user), metadata=client.auth
    )


async def _record(client: Client, user: str, **fields: Any) -> str:
    response = await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(user_id=user, primitive="seo", quantity=1, **fields),
        metadata=client.auth,
    )
    return str(response.usage_event_id)


async def _refund(client: Client, event_id: str) -> None:
    await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=event_id), metadata=client.auth
    )


async def _outbox(client: Client) -> Any:
    return await stripe_stub(client).GetMeterOutbox(
        stripe_pb2.GetMeterOutboxRequest(), metadata=client.auth
    )


async def test_usage_before_the_customer_is_held_then_sent_once_it_exists(
    client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    await _sent_meter(client)
    paid = await _record(client, "u1")
    old_time = clock.now() - timedelta(days=36)
    old = await _record(client, "trial", occurred_at=old_time)  # before Stripe's 35 days
    trial = [await _record(client, "trial") for _ in range(3)]
    await _refund(client, trial[2])  # refunded while held: never sent

    async def held() -> bool:
        outbox = await _outbox(client)
        return bool(f"usage_{paid}" in fake.delivered() and outbox.held == 4)

    await _eventually(held)
    outbox = await _outbox(client)
    assert outbox.pending == 0 and list(outbox.failed) == []
    assert set(fake.delivered()) == {f"usage_{paid}"}

    await _ensure_customer(client, "trial")  # the trial's Checkout creates the customer

    async def released() -> bool:
        outbox = await _outbox(client)
        return bool(outbox.held == 0 and outbox.pending == 0 and len(outbox.failed) == 1)

    await _eventually(released)
    assert set(fake.delivered()) == {f"usage_{i}" for i in (paid, *trial[:2])}
    assert fake.state.cancels == []
    (too_old,) = (await _outbox(client)).failed
    assert too_old.identifier == f"usage_{old}" and too_old.action == "report"
    assert "35 days" in too_old.error and not too_old.needs_credit
    customers = {e["payload"]["stripe_customer_id"] for e in fake.delivered().values()}
    assert len(customers) == 2


async def test_refunds_past_stripes_cancel_window_are_listed_for_credit(
    client: Client, fake: FakeStripe, clock: FixedClock
) -> None:
    await _sent_meter(client)
    ids = [await _record(client, "u1") for _ in range(3)]

    async def sent() -> bool:
        return len(fake.delivered()) == 3 and (await _outbox(client)).pending == 0

    await _eventually(sent)
    await _refund(client, ids[0])  # within the window: cancelled at Stripe

    async def cancelled() -> bool:
        return fake.state.cancels == [f"usage_{ids[0]}"]

    await _eventually(cancelled)
    # Past Stripe's 24 hours: within the two days a cancel used to be sent
    # in (which Stripe refuses), and after them (never sent at all).
    for event_id, later in zip(ids[1:], (timedelta(hours=25), timedelta(days=2)), strict=True):
        clock.set(clock.now() + later)
        fake.age_meter_events(later.total_seconds())
        await _refund(client, event_id)

    async def listed() -> bool:
        return len((await _outbox(client)).failed) == 2

    await _eventually(listed)
    outbox = await _outbox(client)
    assert {f.identifier for f in outbox.failed} == {f"usage_{i}" for i in ids[1:]}
    for failed in outbox.failed:
        assert failed.action == "cancel" and failed.needs_credit, failed
        assert "24 hours" in failed.error and "credit" in failed.error, failed
    assert outbox.pending == 0
    assert fake.state.cancels == [f"usage_{ids[0]}"]
