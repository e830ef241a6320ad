"""Meters: what a primitive measures, in which unit, how a month of its
events aggregates, and how many decimals a quantity may have."""

import enum
from dataclasses import dataclass
from datetime import datetime


class Aggregation(enum.StrEnum):
    SUM = "sum"
    MAX = "max"  # a gauge's peak
    LAST = "last"  # a gauge's reading latest in time


@dataclass(frozen=True, slots=True)
class Meter:
    key: str
    display_name: str
    unit: str
    aggregation: Aggregation
    scale: int  # decimals a quantity may have, 0 to 6
    built_in: bool = False
    stripe_event_name: str | None = None  # the Stripe meter its events go to
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _built_in(key: str, name: str, unit: str, aggregation: Aggregation, scale: int) -> Meter:
    return Meter(key, name, unit, aggregation, scale, built_in=True)


# The billing page's dimensions (the seed's usage summary), ready to use.
BUILT_IN: dict[str, Meter] = {
    meter.key: meter
    for meter in (
        _built_in("sandbox_compute_hours", "Sandbox compute", "hour", Aggregation.SUM, 6),
        _built_in("database_compute_hours", "Database compute", "hour", Aggregation.SUM, 6),
        _built_in("database_storage_gb", "Database storage", "GB", Aggregation.MAX, 6),
        _built_in("storage_gb", "Object storage", "GB", Aggregation.MAX, 6),
        _built_in("ai_tokens", "AI tokens", "token", Aggregation.SUM, 0),
        _built_in("ai_cost_cents", "AI cost", "cent", Aggregation.SUM, 6),
        _built_in("deployment_compute_hours", "Deployment compute", "hour", Aggregation.SUM, 6),
    )
}


def undeclared(key: str) -> Meter:
    """The meter of a primitive nobody declared: a count of calls."""
    return Meter(key, key, "call", Aggregation.SUM, 0)
