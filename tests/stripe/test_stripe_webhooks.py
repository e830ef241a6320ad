"""Stripe webhooks: signatures, duplicates, events out of order, unknown
prices and customers, and what each event changes, seen through the RPCs."""

import time
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
from billing.v1 import plan_pb2, stripe_pb2, subscription_pb2, usage_pb2

from billing_service.clock import FixedClock
from billing_service.gateway.server import RunningGateway

from ..conftest import Client
from ..fake_stripe import FakeStripe
from ..gateway_fixtures import gateway_fixture, gateway_url
from ..rpc_errors import refused
from .stripe_fixtures import (
    Events,
    connect,
    deliver,
    fake_fixture,
    operator_of,
    settings_fixture,
    sign,
    stripe_stub,
)

__all__ = ["fake_fixture", "gateway_fixture", "settings_fixture"]

PERIOD_END = int(datetime(2026, 7, 1, tzinfo=UTC).timestamp())


async def _setup(client: Client, fake: FakeStripe) -> tuple[int, str]:
    """An operator with Stripe connected, plan 'pro' on price_pro with a
    quota of 2 'seo', and user u1's customer: (operator id, customer id)."""
    operator = operator_of(await connect(client))
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(
            key="pro", name="Pro", stripe_price_id="price_pro", quotas={"seo": 2}
        ),
        metadata=client.auth,
    )
    customer = await stripe_stub(client).EnsureCustomer(
        stripe_pb2.EnsureCustomerRequest(user_id="u1"), metadata=client.auth
    )
    return operator, customer.stripe_customer_id


def _subscription(fake: FakeStripe, customer: str, status: str, price: str = "price_pro") -> Any:
    return fake.put(
        {
            "id": "sub_1",
            "object": "subscription",
            "customer": customer,
            "status": status,
            "metadata": {},
            "items": {
                "object": "list",
                "data": [{"price": {"id": price}, "current_period_end": PERIOD_END}],
            },
        }
    )


async def _events(client: Client, outcome: Any = 0) -> list[Any]:
    response = await stripe_stub(client).ListStripeEvents(
        stripe_pb2.ListStripeEventsRequest(outcome=outcome), metadata=client.auth
    )
    return list(response.events)


async def _subscription_of(client: Client, user: str) -> Any:
    response = await client.subscriptions.GetSubscription(
        subscription_pb2.GetSubscriptionRequest(user_id=user), metadata=client.auth
    )
    return response.subscription


async def test_bad_missing_or_stale_signatures_are_refused_and_change_nothing(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel, gateway: RunningGateway
) -> None:
    operator, customer = await _setup(client, fake)
    payload = Events().make(
        "customer.subscription.created", _subscription(fake, customer, "active")
    )
    for signature in (
        sign(payload, secret="whsec_" + "x" * 30),  # forged
        sign(payload, at=int(time.time()) - 301),  # stale
        "",  # missing
        "t=1,v1=nothing",
    ):
        failure = await refused(deliver(channel, operator, payload, signature))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
        assert failure.fields == ("signature",)
    tampered = payload.replace(b"active", b"paused")
    failure = await refused(deliver(channel, operator, tampered, sign(payload)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT

    async with httpx.AsyncClient(base_url=gateway_url(gateway)) as http:
        path = f"/v1/stripe/webhooks/{operator}"
        refused_http = await http.post(path, content=payload, headers={"Stripe-Signature": "t=1"})
        assert refused_http.status_code == 400
        assert refused_http.json()["error"]["code"] == "invalid_argument"
        assert (await http.post(path, content=payload)).status_code == 400
        assert (await http.post("/v1/stripe/webhooks/x1", content=payload)).status_code == 404
        for beyond in ("4294967296", "99999999999"):  # no operator has so large an id
            answer = await http.post(f"/v1/stripe/webhooks/{beyond}", content=payload)
            assert answer.status_code == 404, answer.text
        assert (await _events(client)) == []
        # The real thing through the gateway: Stripe's raw body, its header.
        good = await http.post(path, content=payload, headers={"Stripe-Signature": sign(payload)})
        assert good.status_code == 200, good.text
        assert good.json()["outcome"] == "applied"


async def test_a_subscription_event_sets_the_subscription_and_its_quotas(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator, customer = await _setup(client, fake)
    events = Events()
    payload = events.make("customer.subscription.created", _subscription(fake, customer, "active"))
    answer = await deliver(channel, operator, payload)
    assert answer.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED and not answer.duplicate
    sub = await _subscription_of(client, "u1")
    assert (sub.plan_key, sub.status) == ("pro", subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE)
    assert (sub.stripe_customer_id, sub.stripe_subscription_id) == (customer, "sub_1")
    assert sub.current_period_end.seconds == PERIOD_END
    for _ in range(2):
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(user_id="u1", primitive="seo"), metadata=client.auth
        )
    over = await refused(
        client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(user_id="u1", primitive="seo"), metadata=client.auth
        )
    )
    assert over.code == grpc.StatusCode.RESOURCE_EXHAUSTED

    again = await deliver(channel, operator, payload)
    assert again.duplicate and again.event_id == answer.event_id

    _subscription(fake, customer, "past_due")
    failed = events.make("invoice.payment_failed", {"id": "in_1", "subscription": "sub_1"})
    assert (await deliver(channel, operator, failed)).outcome == (
        stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED
    )
    status = await stripe_stub(client).GetBillingStatus(
        stripe_pb2.GetBillingStatusRequest(user_id="u1"), metadata=client.auth
    )
    assert status.status == subscription_pb2.SUBSCRIPTION_STATUS_PAST_DUE
    assert status.has_stripe_account and status.stripe_subscription_id == "sub_1"


async def test_events_out_of_order_never_bring_back_an_older_state(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator, customer = await _setup(client, fake)
    events, now = Events(), int(time.time())
    created = events.make(
        "customer.subscription.created", _subscription(fake, customer, "incomplete"), now - 60
    )
    updated = events.make(
        "customer.subscription.updated", _subscription(fake, customer, "active"), now - 30
    )
    deleted = events.make(
        "customer.subscription.deleted", _subscription(fake, customer, "canceled"), now
    )
    # Stripe's current state is "canceled"; the deletion arrives first.
    assert (await deliver(channel, operator, deleted)).outcome == (
        stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED
    )
    for late in (updated, created):
        answer = await deliver(channel, operator, late)
        assert answer.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_STALE
    sub = await _subscription_of(client, "u1")
    assert sub.status == subscription_pb2.SUBSCRIPTION_STATUS_CANCELED
    stale = await _events(client, stripe_pb2.STRIPE_EVENT_OUTCOME_STALE)
    assert len(stale) == 2


async def test_events_of_the_same_second_apply_stripes_current_state(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator, customer = await _setup(client, fake)
    events, now = Events(), int(time.time())
    created = events.make("customer.subscription.created", {"id": "sub_1"}, now)
    updated = events.make("customer.subscription.updated", {"id": "sub_1"}, now)
    _subscription(fake, customer, "active")  # what Stripe holds by the time they arrive
    await deliver(channel, operator, updated)
    await deliver(channel, operator, created)
    sub = await _subscription_of(client, "u1")
    assert sub.status == subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE


async def test_an_unknown_price_or_customer_is_recorded_and_shown(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator, customer = await _setup(client, fake)
    events = Events()
    payload = events.make(
        "customer.subscription.created",
        _subscription(fake, customer, "active", price="price_unmapped"),
    )
    answer = await deliver(channel, operator, payload)
    assert answer.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_UNKNOWN_PRICE
    shown = await _events(client, stripe_pb2.STRIPE_EVENT_OUTCOME_UNKNOWN_PRICE)
    assert [e.detail for e in shown] == ["price_unmapped"]
    stranger = fake.put(
        {"id": "sub_2", "object": "subscription", "customer": "cus_stranger",
         "status": "active", "metadata": {}, "items": {"data": []}}
    )  # fmt: skip
    answer = await deliver(
        channel, operator, events.make("customer.subscription.created", stranger)
    )
    assert answer.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_UNKNOWN_CUSTOMER
    ignored = await deliver(channel, operator, events.make("charge.refunded", {"id": "ch_1"}))
    assert ignored.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_IGNORED
    vanished = events.make("customer.subscription.deleted", {"id": "sub_gone"})
    answer = await deliver(channel, operator, vanished)  # Stripe has no sub_gone any more
    assert answer.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_IGNORED
    assert len(await _events(client)) == 4


async def test_payment_methods_decide_whether_api_keys_may_be_created(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel
) -> None:
    operator, customer = await _setup(client, fake)
    stub, events = stripe_stub(client), Events()

    async def can_create() -> Any:
        return await stub.CanCreateApiKey(
            stripe_pb2.CanCreateApiKeyRequest(user_id="u1"), metadata=client.auth
        )

    assert not (await can_create()).can_create
    assert "payment method" in (await can_create()).reason
    fake.put({"id": "pm_1", "object": "payment_method", "customer": customer})
    fake.put({"id": "seti_1", "object": "setup_intent", "payment_method": "pm_1"})
    session = {
        "id": "cs_1", "object": "checkout.session", "mode": "setup", "customer": customer,
        "client_reference_id": "u1", "setup_intent": "seti_1", "metadata": {},
    }  # fmt: skip
    await deliver(channel, operator, events.make("checkout.session.completed", session))
    assert (await can_create()).can_create
    billing = await stub.GetBilling(
        stripe_pb2.GetBillingRequest(user_id="u1"), metadata=client.auth
    )
    assert billing.has_payment_method and billing.stripe_customer_id == customer

    fake.put({"id": "pm_1", "object": "payment_method", "customer": None})
    await deliver(channel, operator, events.make("payment_method.detached", {"id": "pm_1"}))
    assert not (await can_create()).can_create

    gone = await deliver(channel, operator, events.make("payment_method.detached", {"id": "pm_x"}))
    assert gone.outcome == stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED  # Stripe has no pm_x: none

    fake.put({"id": "pm_2", "object": "payment_method", "customer": customer})
    fake.put(
        {
            "id": customer,
            "object": "customer",
            "invoice_settings": {"default_payment_method": "pm_2"},
        }
    )
    await deliver(channel, operator, events.make("customer.updated", {"id": customer}))
    assert (await can_create()).can_create

    await connect(client, api_key_rule=stripe_pb2.API_KEY_RULE_PAYMENT_METHOD_AND_SUBSCRIPTION)
    answer = await can_create()
    assert not answer.can_create and "Subscribe" in answer.reason


async def test_a_cycle_anchored_on_the_31st_keeps_stripes_periods_through_short_months(
    client: Client, fake: FakeStripe, channel: grpc.aio.Channel, clock: FixedClock
) -> None:
    """Stripe clamps current_period_end (Jan 31 renews to Feb 28, then Mar
    31): the service's period is Stripe's, so usage of Jan 29-30 counts
    against January's period only."""
    operator, customer = await _setup(client, fake)
    anchor = datetime(2025, 12, 31, 9, 30, tzinfo=UTC)
    events, created = Events(), int(time.time())

    async def renewed(now: datetime, start: datetime, end: datetime) -> Any:
        clock.set(now)
        item = {
            "price": {"id": "price_pro"},
            "current_period_start": int(start.timestamp()),
            "current_period_end": int(end.timestamp()),
        }
        sub = fake.put(
            {
                "id": "sub_1",
                "object": "subscription",
                "customer": customer,
                "status": "active",
                "metadata": {},
                "billing_cycle_anchor": int(anchor.timestamp()),
                "items": {"object": "list", "data": [item]},
            }
        )
        payload = events.make("customer.subscription.updated", sub, created + events.count)
        assert (await deliver(channel, operator, payload)).outcome == (
            stripe_pb2.STRIPE_EVENT_OUTCOME_APPLIED
        )
        got = await _subscription_of(client, "u1")
        assert (got.period_start.ToDatetime(UTC), got.period_end.ToDatetime(UTC)) == (start, end)
        return got

    async def consume() -> Any:
        return await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(user_id="u1", primitive="seo"), metadata=client.auth
        )

    jan_31, feb_28 = (
        datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
        datetime(2026, 2, 28, 9, 30, tzinfo=UTC),
    )
    await renewed(datetime(2026, 1, 30, tzinfo=UTC), anchor, jan_31)
    for _ in range(2):  # the quota of 2, used up on Jan 30
        await consume()

    await renewed(datetime(2026, 2, 10, tzinfo=UTC), jan_31, feb_28)
    assert (await consume()).standing.used == 1  # a new period, Jan 30 not in it

    mar_31 = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    await renewed(datetime(2026, 3, 10, tzinfo=UTC), feb_28, mar_31)
    got = await renewed(
        datetime(2026, 4, 10, tzinfo=UTC), mar_31, datetime(2026, 4, 30, 9, 30, tzinfo=UTC)
    )
    assert got.billing_cycle_anchor.ToDatetime(UTC) == anchor
