"""Connecting a Stripe account, customers, Checkout and Portal sessions,
and Stripe's errors, through the real stripe library against a fake Stripe."""

import asyncio
import logging
from typing import Any

import grpc
import pytest
from billing.v1 import plan_pb2, stripe_pb2
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from billing_service.app import App, CannotOpen, open_app
from billing_service.config import Settings
from billing_service.domain.errors import FailedPrecondition

from ..conftest import Client
from ..fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from ..rpc_errors import assert_invalid_argument, refused
from .stripe_fixtures import (
    SECRETS_KEY,
    connect,
    fake_fixture,
    settings_fixture,
    stripe_stub,
)

__all__ = ["fake_fixture", "settings_fixture"]


async def test_connecting_keeps_the_secrets_encrypted_and_never_answers_them(
    app: App, client: Client
) -> None:
    account = await connect(client, api_key_rule=stripe_pb2.API_KEY_RULE_PAYMENT_METHOD)
    assert not account.livemode
    assert account.webhook_path.startswith("/v1/stripe/webhooks/")
    got = await stripe_stub(client).GetStripeAccount(
        stripe_pb2.GetStripeAccountRequest(), metadata=client.auth
    )
    assert SECRET_KEY not in str(got) and WEBHOOK_SECRET not in str(got)
    async with app.store._writer.connect() as conn:  # what a database dump shows
        row = (await conn.execute(text("SELECT * FROM stripe_accounts"))).one()
    assert SECRET_KEY not in str(row) and WEBHOOK_SECRET not in str(row)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_a_malformed_key_is_refused_without_being_echoed(client: Client) -> None:
    bad = "sk_live_short"
    failure = await assert_invalid_argument(
        stripe_stub(client).ConnectStripeAccount(
            stripe_pb2.ConnectStripeAccountRequest(secret_key=bad, webhook_secret=WEBHOOK_SECRET),
            metadata=client.auth,
        ),
        "secret_key",
    )
    assert bad not in failure.message


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_without_a_secrets_key_connecting_is_a_failed_precondition(
    app: App, client: Client
) -> None:
    app.payments._box = type(app.payments._box)(None)
    failure = await refused(connect(client))
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "BILLING_SECRETS_KEY" in failure.message


async def test_calls_to_stripe_before_connecting_are_a_failed_precondition(
    client: Client,
) -> None:
    failure = await refused(
        stripe_stub(client).EnsureCustomer(
            stripe_pb2.EnsureCustomerRequest(user_id="u1"), metadata=client.auth
        )
    )
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert failure.reason == "STRIPE_NOT_CONNECTED"


async def test_concurrent_ensure_customer_calls_create_one_customer(
    client: Client, fake: FakeStripe
) -> None:
    await connect(client)
    stub = stripe_stub(client)
    answers = await asyncio.gather(
        *(
            stub.EnsureCustomer(
                stripe_pb2.EnsureCustomerRequest(organization_id="org1"), metadata=client.auth
            )
            for _ in range(20)
        )
    )
    assert len({a.stripe_customer_id for a in answers}) == 1
    assert sum(a.is_new for a in answers) == 1
    assert fake.state.customers_created == 1
    again = await stub.EnsureCustomer(
        stripe_pb2.EnsureCustomerRequest(organization_id="org1"), metadata=client.auth
    )
    assert (again.stripe_customer_id, again.is_new) == (answers[0].stripe_customer_id, False)


async def test_checkout_in_setup_and_subscription_mode_and_the_portal(
    client: Client, fake: FakeStripe
) -> None:
    await connect(client)
    stub = stripe_stub(client)
    setup = await stub.CreateCheckoutSession(
        stripe_pb2.CreateCheckoutSessionRequest(
            user_id="u1", return_url="https://app.example/billing"
        ),
        metadata=client.auth,
    )
    assert setup.url.endswith(setup.session_id)
    sent = fake.state.sessions[-1]
    assert (sent["mode"], sent["client_reference_id"], sent["currency"]) == ("setup", "u1", "usd")

    fake.put({"id": "price_pro", "object": "price", "recurring": {"usage_type": "metered"}})
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", stripe_price_id="price_pro"),
        metadata=client.auth,
    )
    await stub.CreateCheckoutSession(
        stripe_pb2.CreateCheckoutSessionRequest(
            user_id="u1",
            return_url="http://localhost:3000/billing",
            mode=stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION,
            plan_key="pro",
        ),
        metadata=client.auth,
    )
    sent = fake.state.sessions[-1]
    assert sent["mode"] == "subscription"
    assert sent["line_items"] == {"0": {"price": "price_pro"}}  # metered: no quantity
    assert sent["subscription_data"]["metadata"]["billing_owner"] == "u1"

    portal = await stub.CreatePortalSession(
        stripe_pb2.CreatePortalSessionRequest(user_id="u1", return_url="https://app.example/b"),
        metadata=client.auth,
    )
    assert portal.url.startswith("https://billing.fake/p/")
    assert fake.state.customers_created == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_checkout_refuses_what_stripe_could_not_use(client: Client) -> None:
    await connect(client)
    stub = stripe_stub(client)
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="free", name="Free"), metadata=client.auth
    )
    for url in ("http://app.example/b", "javascript:alert(1)", "", "https://a b/"):
        await assert_invalid_argument(
            stub.CreateCheckoutSession(
                stripe_pb2.CreateCheckoutSessionRequest(user_id="u1", return_url=url),
                metadata=client.auth,
            ),
            "return_url",
        )
    await assert_invalid_argument(
        stub.CreateCheckoutSession(
            stripe_pb2.CreateCheckoutSessionRequest(
                user_id="u1",
                return_url="https://app.example/b",
                mode=stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION,
                plan_key="free",
            ),
            metadata=client.auth,
        ),
        "plan_key",
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_stripe_errors_map_to_our_table(client: Client, fake: FakeStripe) -> None:
    await connect(client)
    stub = stripe_stub(client)

    def ensure(owner: str) -> Any:
        return stub.EnsureCustomer(
            stripe_pb2.EnsureCustomerRequest(user_id=owner), metadata=client.auth
        )

    fake.state.api_key = "sk_test_another"
    failure = await refused(ensure("u1"))
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "STRIPE_KEY_REJECTED",
    )
    assert "Stripe key rejected" in failure.message and SECRET_KEY not in failure.message
    fake.state.api_key = SECRET_KEY

    fake.fail(429, times=1)
    assert (await refused(ensure("u2"))).code == grpc.StatusCode.UNAVAILABLE
    fake.fail(500, times=5)  # more than the library's retries
    assert (await refused(ensure("u3"))).code == grpc.StatusCode.UNAVAILABLE
    fake.recover()
    fake.fail(500, times=1)  # the library's retry succeeds
    assert (await ensure("u5")).is_new

    failure = await refused(
        stub.CreateCheckoutSession(
            stripe_pb2.CreateCheckoutSessionRequest(
                user_id="u5",
                return_url="https://app.example/b",
                mode=stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION,
                plan_key="ghost",
            ),
            metadata=client.auth,
        )
    )
    assert failure.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no storage involved
async def test_stripe_not_answering_in_time_is_unavailable(
    client: Client, fake: FakeStripe
) -> None:
    await connect(client)
    fake.fail(0, times=2)  # hangs past the timeout, on the first try and the retry
    fake.state.hang_seconds = 2
    failure = await refused(
        stripe_stub(client).EnsureCustomer(
            stripe_pb2.EnsureCustomerRequest(user_id="u4"), metadata=client.auth
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STRIPE_UNAVAILABLE")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_an_invalid_request_passes_on_stripes_message_and_request_id(
    client: Client, fake: FakeStripe
) -> None:
    await connect(client)
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", stripe_price_id="price_gone"),
        metadata=client.auth,
    )
    failure = await refused(
        stripe_stub(client).CreateCheckoutSession(
            stripe_pb2.CreateCheckoutSessionRequest(
                user_id="u1",
                return_url="https://app.example/b",
                mode=stripe_pb2.CHECKOUT_MODE_SUBSCRIPTION,
                plan_key="pro",
            ),
            metadata=client.auth,
        )
    )
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
    assert failure.reason == "STRIPE_REFUSED"
    assert "No such" in failure.message
    assert failure.metadata["stripe_request_id"].startswith("req_fake")


def test_settings_hide_the_secrets_key() -> None:
    settings = Settings(secrets_key=SecretStr("a-secret-value"))
    assert "a-secret-value" not in repr(settings)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_secrets_never_reach_the_logs(
    client: Client, fake: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await connect(client)
    stub = stripe_stub(client)
    await stub.EnsureCustomer(stripe_pb2.EnsureCustomerRequest(user_id="u1"), metadata=client.auth)
    fake.fail(500, times=5)
    await refused(
        stub.EnsureCustomer(stripe_pb2.EnsureCustomerRequest(user_id="u2"), metadata=client.auth)
    )
    fake.recover()
    fake.state.api_key = "sk_test_another"
    await refused(
        stub.EnsureCustomer(stripe_pb2.EnsureCustomerRequest(user_id="u3"), metadata=client.auth)
    )
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    assert "Stripe unavailable" in logged  # the logs were captured
    for secret in (SECRET_KEY, WEBHOOK_SECRET, SECRETS_KEY):
        assert secret not in logged


async def test_rotating_the_secrets_key_keeps_connected_accounts_readable(
    app: App, client: Client, settings: Settings, clock: Any
) -> None:
    await connect(client)
    old = settings.secrets_key
    assert old is not None
    new = Fernet.generate_key().decode()
    operator = (await app.store.list_operators())[0].id
    rotated = await open_app(
        settings.model_copy(update={"secrets_key": SecretStr(f"{new},{old.get_secret_value()}")}),
        clock,
    )
    try:
        assert await rotated.payments.secret_key(operator) == SECRET_KEY
    finally:
        await rotated.close()
    forgotten = await open_app(settings.model_copy(update={"secrets_key": SecretStr(new)}), clock)
    try:
        with pytest.raises(FailedPrecondition, match="no longer"):
            await forgotten.payments.secret_key(operator)
    finally:
        await forgotten.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
async def test_a_malformed_secrets_key_stops_the_service_from_starting(settings: Settings) -> None:
    with pytest.raises(CannotOpen, match="Fernet keys") as raised:
        await open_app(settings.model_copy(update={"secrets_key": SecretStr("not-a-key")}))
    assert "not-a-key" not in str(raised.value)
