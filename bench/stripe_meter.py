"""`bench/run.py --stripe-meter`: the hot path with one Stripe meter. The
benchmark's primitive is declared as a meter sent to Stripe, the operator's
account connected to the tests' fake Stripe on loopback, and every tenant
given a customer: every event is then queued in its transaction (the outbox
triggers) and sent by the service's background sender, within its rate."""

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
from billing.v1 import meter_pb2, meter_pb2_grpc, stripe_pb2, stripe_pb2_grpc
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, running_fake

EVENT_NAME = "bench_api_calls"


@contextmanager
def fake_stripe_for_services() -> Iterator[str]:
    """A fake Stripe, and the environment the services started from now on
    need to reach it; yields its address."""
    with running_fake() as fake:
        fake.state.keep_meter_events = False
        os.environ["BILLING_SECRETS_KEY"] = Fernet.generate_key().decode()
        os.environ["BILLING_STRIPE_API_BASE"] = fake.base_url
        try:
            yield fake.base_url
        finally:
            os.environ.pop("BILLING_SECRETS_KEY")
            os.environ.pop("BILLING_STRIPE_API_BASE")


def send_to_stripe(address: str, api_key: str, primitive: str, owners: Sequence[str]) -> None:
    """Declare `primitive` as a meter sent to Stripe, connect the account and
    give each owner its Stripe customer (usage of owners without one is not
    queued)."""
    metadata = (("authorization", f"Bearer {api_key}"),)
    with grpc.insecure_channel(address) as channel:
        meter_pb2_grpc.MeterServiceStub(channel).UpsertMeter(
            meter_pb2.UpsertMeterRequest(
                key=primitive, display_name="API calls", unit="call", stripe_event_name=EVENT_NAME
            ),
            metadata=metadata,
            timeout=30,
        )
        stripe = stripe_pb2_grpc.StripeServiceStub(channel)
        stripe.ConnectStripeAccount(
            stripe_pb2.ConnectStripeAccountRequest(
                secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET
            ),
            metadata=metadata,
            timeout=30,
        )
        for owner in owners:
            stripe.EnsureCustomer(
                stripe_pb2.EnsureCustomerRequest(user_id=owner), metadata=metadata, timeout=30
            )


def wait_until_sent(address: str, api_key: str, timeout: float = 600.0) -> None:
    """Wait until the service's outbox holds nothing pending (GetMeterOutbox)."""
    metadata = (("authorization", f"Bearer {api_key}"),)
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stripe = stripe_pb2_grpc.StripeServiceStub(channel)
        request = stripe_pb2.GetMeterOutboxRequest()
        while stripe.GetMeterOutbox(request, metadata=metadata, timeout=30).pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the outbox of {address} was not sent in {timeout:.0f} s")
            time.sleep(0.2)
