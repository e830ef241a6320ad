"""Fixtures of the Stripe tests: a fake Stripe on loopback, the service's
settings pointing at it, an operator with its account connected, and
webhooks signed with the library's own helper. Import the `*_fixture`
functions into a test module to use them under their short names."""

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import stripe
from billing.v1 import stripe_pb2, stripe_pb2_grpc
from cryptography.fernet import Fernet
from pydantic import SecretStr

from billing_service.config import Settings

from ..conftest import Client
from ..fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, running_fake

SECRETS_KEY = Fernet.generate_key().decode()


@pytest.fixture(name="fake")
def fake_fixture() -> Iterator[FakeStripe]:
    with running_fake() as fake:
        yield fake


@pytest.fixture(name="settings")
def settings_fixture(database_url: str, fake: FakeStripe) -> Settings:
    return stripe_settings(database_url, fake)


def stripe_settings(database_url: str, fake: FakeStripe) -> Settings:
    """The service's settings with Stripe calls going to the fake."""
    return Settings(
        database_url=database_url,
        auth_cache_seconds=0,
        migrate_on_start=True,
        http_addr="",
        grpc_addr="127.0.0.1:0",
        secrets_key=SecretStr(SECRETS_KEY),
        stripe_api_base=fake.base_url,
        stripe_max_network_retries=1,
        stripe_timeout_seconds=1,
        stripe_outbox_poll_seconds=0.05,
        stripe_outbox_lease_seconds=2,
    )


def stripe_stub(client: Client) -> stripe_pb2_grpc.StripeServiceStub:
    return stripe_pb2_grpc.StripeServiceStub(client.channel)


def webhook_stub(channel: grpc.aio.Channel) -> stripe_pb2_grpc.StripeWebhookServiceStub:
    return stripe_pb2_grpc.StripeWebhookServiceStub(channel)


async def connect(client: Client, **extra: Any) -> Any:
    response = await stripe_stub(client).ConnectStripeAccount(
        stripe_pb2.ConnectStripeAccountRequest(
            secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, **extra
        ),
        metadata=client.auth,
    )
    return response.account


def operator_of(account: stripe_pb2.StripeAccount) -> int:
    return int(account.webhook_path.rsplit("/", 1)[1])


class Events:
    """Stripe events, numbered, signed as Stripe signs them."""

    def __init__(self) -> None:
        self.count = 0

    def make(self, kind: str, obj: dict[str, Any], created: int | None = None) -> bytes:
        self.count += 1
        event = {
            "id": f"evt_test{self.count:05d}",
            "object": "event",
            "type": kind,
            "created": created if created is not None else int(time.time()),
            "data": {"object": obj},
        }
        return json.dumps(event).encode()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=at
    )
    return header


async def deliver(
    channel: grpc.aio.Channel, operator_id: int, payload: bytes, signature: str | None = None
) -> Any:
    return await webhook_stub(channel).HandleStripeWebhook(
        stripe_pb2.HandleStripeWebhookRequest(
            operator_id=operator_id,
            payload=payload,
            signature=sign(payload) if signature is None else signature,
        )
    )
