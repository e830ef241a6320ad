from datetime import UTC, datetime

import pytest

from billing_service.clock import FixedClock


@pytest.fixture(autouse=True)
def system_time(clock: FixedClock) -> None:
    """The service processes run on the system clock; so does the test's own app."""
    clock.set(datetime.now(UTC))
