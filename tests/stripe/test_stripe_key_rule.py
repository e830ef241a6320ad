"""The rule a Stripe secret key must follow, as a refused caller reads it:
the message states the rule the service applies, so a key it names as valid
is never refused."""

import pytest
from billing.v1 import stripe_pb2

from ..conftest import Client
from ..fake_stripe import WEBHOOK_SECRET
from ..rpc_errors import assert_invalid_argument
from .stripe_fixtures import fake_fixture, settings_fixture, stripe_stub

__all__ = ["fake_fixture", "settings_fixture"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # Stripe, not storage
@pytest.mark.parametrize("bad", ["sk_test_123", "pk_live_12345678", "sk_prod_12345678"])
async def test_a_refused_key_is_told_the_rule_it_broke(client: Client, bad: str) -> None:
    failure = await assert_invalid_argument(
        stripe_stub(client).ConnectStripeAccount(
            stripe_pb2.ConnectStripeAccountRequest(secret_key=bad, webhook_secret=WEBHOOK_SECRET),
            metadata=client.auth,
        ),
        "secret_key",
    )
    assert bad not in failure.message
    # Nothing shaped like a key is offered as an example: "sk_test_..." reads
    # as "sk_test_ and anything", which sk_test_123 is.
    assert "..." not in failure.message, failure.message
    rule = "sk_ or rk_, then test_ or live_, then 8 to 240 letters and digits"
    assert rule in failure.message, failure.message
