"""The background jobs behind a real PgBouncer in transaction mode: the
Stripe meter sender (two senders on one database, each event sent once) and
usage alerts raised and dispatched by two `serve` processes, each test run
as its own module runs it, with every connection through the pooler and
statement_cache_size=0 in the URL (what BILLING_DATABASE_POOLER=transaction
sets)."""

import pytest

from .end_users.test_usage_alerts_processes import hook
from .end_users.test_usage_alerts_processes import (
    test_two_processes_raise_and_dispatch_each_alert_once as test_alerts_through_the_pooler,
)
from .pgbouncer import pgbouncer, through
from .stripe.stripe_fixtures import fake_fixture, settings_fixture
from .stripe.test_stripe_meters import (
    test_two_senders_on_one_database_send_each_event_once as test_senders_through_the_pooler,
)
from .stripe.test_stripe_meters import (
    test_usage_of_a_sent_meter_reaches_stripe_once_and_refunds_cancel_it as test_meter_pooled,
)

__all__ = [
    "fake_fixture",
    "hook",
    "pgbouncer",
    "settings_fixture",
    "test_alerts_through_the_pooler",
    "test_meter_pooled",
    "test_senders_through_the_pooler",
]


@pytest.fixture
def backend() -> str:
    """PostgreSQL alone: the pooler stands in front of it."""
    return "postgres"


@pytest.fixture
def database_url(database_url: str, pgbouncer: int) -> str:
    """The test's database (conftest's), reached through the pooler."""
    return through(pgbouncer, database_url) + "?statement_cache_size=0"
