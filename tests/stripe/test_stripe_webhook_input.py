"""Stripe webhooks under hostile or unlucky delivery: signed events with
malformed fields, sent through the REST webhook route, and two deliveries
of one event at the same moment."""

import asyncio
import json
import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import plan_pb2, stripe_pb2, subscription_pb2

from billing_service.config import Settings
from billing_service.gateway.server import RunningGateway

from ..conftest import Client
from ..fake_stripe import FakeStripe
from ..gateway_fixtures import gateway_fixture, gateway_url
from ..rpc_errors import assert_not_found
from .stripe_fixtures import (
    connect,
    deliver,
    fake_fixture,
    operator_of,
    sign,
    stripe_settings,
    stripe_stub,
)

__all__ = ["fake_fixture", "gateway_fixture"]

DAY = 86_400


@pytest.fixture(name="settings")
def slow_stripe_settings_fixture(database_url: str, fake: FakeStripe) -> Settings:
    """A Stripe call may wait as long as a test holds the fake's reads."""
    return stripe_settings(database_url, fake).model_copy(update={"stripe_timeout_seconds": 30})


async def _setup(client: Client, fake: FakeStripe) -> int:
    """Stripe connected, plan 'pro' on price_pro, u1's customer, and the
    subscription sub_1 (active) at Stripe: the operator's id."""
    operator = operator_of(await connect(client))
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", stripe_price_id="price_pro"),
        metadata=client.auth,
    )
    customer = await stripe_stub(client).EnsureCustomer(
        stripe_pb2.EnsureCustomerRequest(user_id="u1"), metadata=client.auth
    )
    fake.put(
        {
            "id": "sub_1", "object": "subscription", "status": "active", "metadata": {},
            "customer": customer.stripe_customer_id,
            "items": {"object": "list", "data": [{"price": {"id": "price_pro"}}]},
        }
    )  # fmt: skip
    return operator


def _event(number: int, kind: str, obj: Any, **envelope: Any) -> bytes:
    event: dict[str, Any] = {"id": f"evt_hostile{number}", "object": "event", "type": kind}
    event |= {"created": int(time.time()), "data": {"object": obj}, **envelope}
    return json.dumps(event).encode()


SUB = "customer.subscription.updated"
CHECKOUT = "checkout.session.completed"
# Signed, malformed, each answered 200 `ignored` and recorded.
IGNORED = {
    "created far ahead": _event(1, SUB, {"id": "sub_1"}, created=10**20),
    "created far back": _event(2, SUB, {"id": "sub_1"}, created=-(10**15)),
    "created 11 days ahead": _event(3, SUB, {"id": "sub_1"}, created=int(time.time()) + 11 * DAY),
    "created a string": _event(4, SUB, {"id": "sub_1"}, created="1"),
    "a subscription without id": _event(5, SUB, {"object": "subscription"}),
    "a payment method without id": _event(6, "payment_method.attached", {}),
    "a customer without id": _event(7, "customer.updated", {"email": "a@b.c"}),
    "an invoice parent that is a string": _event(8, "invoice.paid", {"id": "in_1", "parent": "x"}),
    "metadata a string": _event(9, CHECKOUT, {"customer": "cus_1", "metadata": "u1"}),
    "metadata a list": _event(10, CHECKOUT, {"customer": "cus_1", "metadata": ["u1"]}),
    "a customer dict without id": _event(11, CHECKOUT, {"customer": {"object": "customer"}}),
    "a NUL in an object id": _event(12, SUB, {"id": "sub_\x00"}),
    "an object id of 5,000 characters": _event(13, SUB, {"id": "s" * 5000}),
    "a type of 5,000 characters": _event(14, "t" * 5000, {"id": "sub_1"}),
    "data a string": _event(15, SUB, {}, data="sub_1"),
}
# Signed, but with no id to record them under: refused.
REFUSED = {
    "an id of 5,000 characters": _event(0, SUB, {"id": "sub_1"}, id="e" * 5000),
    "a NUL in the id": _event(0, SUB, {"id": "sub_1"}, id="evt_\x00"),
    "no id": _event(0, SUB, {"id": "sub_1"}, id=None),
}


async def test_signed_malformed_events_are_ignored_and_recorded_over_rest(
    client: Client, fake: FakeStripe, gateway: RunningGateway
) -> None:
    operator = await _setup(client, fake)
    path = f"/v1/stripe/webhooks/{operator}"
    async with httpx.AsyncClient(base_url=gateway_url(gateway)) as http:
        for name, payload in IGNORED.items():
            answer = await http.post(
                path, content=payload, headers={"Stripe-Signature": sign(payload)}
            )
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["outcome"] == "ignored", (name, answer.text)
        for name, payload in REFUSED.items():
            answer = await http.post(
                path, content=payload, headers={"Stripe-Signature": sign(payload)}
            )
            assert answer.status_code == 400, (name, answer.text)
            assert answer.json()["error"]["code"] == "invalid_argument", (name, answer.text)
        again = IGNORED["created far ahead"]
        answer = await http.post(path, content=again, headers={"Stripe-Signature": sign(again)})
        assert answer.json()["duplicate"] is True
    listed = await stripe_stub(client).ListStripeEvents(
        stripe_pb2.ListStripeEventsRequest(page_size=100), metadata=client.auth
    )
    recorded = {event.event_id: event for event in listed.events}
    assert set(recorded) == {json.loads(p)["id"] for p in IGNORED.values()}
    for event in recorded.values():
        assert event.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_IGNORED
        assert event.detail.startswith("malformed event: "), event
    assert "created" in recorded["evt_hostile3"].detail
    assert recorded["evt_hostile14"].type == "unknown"
    await assert_not_found(  # nothing applied
        client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(user_id="u1"), metadata=client.auth
        )
    )
    assert not [p for m, p in fake.state.requests if m == "GET" and "sub_1" in p]


async def test_two_deliveries_at_once_apply_an_event_once(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator = await _setup(client, fake)
    payload = _event(1, SUB, {"id": "sub_1"})

    def reads() -> list[str]:
        return [p for m, p in fake.state.requests if m == "GET" and p.endswith("/sub_1")]

    fake.state.hold_reads = threading.Event()
    first = asyncio.create_task(deliver(channel, operator, payload))
    second = asyncio.create_task(deliver(channel, operator, payload))
    # Held: the winner inside its handler's read of sub_1; the loser has
    # answered, or (were both to handle it) read sub_1 as well.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not ((first.done() or second.done()) and reads()) and len(reads()) < 2:
        assert loop.time() < deadline, "neither delivery got anywhere"
        await asyncio.sleep(0.01)
    fake.state.hold_reads.set()
    answers = await asyncio.gather(first, second)
    assert sorted(answer.duplicate for answer in answers) == [False, True]
    assert len(reads()) == 1
    applied = next(answer for answer in answers if not answer.duplicate)
    assert applied.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED


async def test_a_failed_handler_leaves_the_event_to_stripes_retry(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator = await _setup(client, fake)
    payload = _event(1, SUB, {"id": "sub_1"})
    fake.fail(500, times=None, path_prefix="/v1/subscriptions")
    try:
        await deliver(channel, operator, payload)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    else:
        raise AssertionError("delivered while Stripe fails")
    fake.recover()
    retried = await deliver(channel, operator, payload)  # Stripe's retry
    assert not retried.duplicate
    assert retried.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED
