"""How long a delivery that failed waits before it is tried again."""

import random
from datetime import timedelta


def retry_delay(attempts: int, cap_seconds: float) -> timedelta:
    """Exponential in the attempts made (2^n seconds, capped), with jitter so
    that deliveries failed together do not come due together."""
    seconds = min(2.0 ** min(attempts, 30), cap_seconds)
    return timedelta(seconds=seconds * random.uniform(0.5, 1.0))
