"""Quantities of usage: decimals with at most six places, stored exactly as
integer millionths ("micro-units") everywhere below the API, so that sums
are integer sums and no binary float ever holds a quantity.

A whole-unit call of 3 is stored as 3,000,000; a quota of 1,000 units is a
limit of 1,000,000,000 micro-units. Only the API's edges convert.
"""

from decimal import Decimal

PLACES = 6
UNIT = 1_000_000  # 10**PLACES


def micro(units: int) -> int:
    """Whole units in micro-units."""
    return units * UNIT


def to_decimal(micro_units: int) -> Decimal:
    """Micro-units as an exact Decimal of units, without trailing zeros."""
    value = Decimal(micro_units).scaleb(-PLACES)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def whole(micro_units: int) -> int:
    """Micro-units as whole units, rounded down (the int64 fields)."""
    return micro_units // UNIT


def display(micro_units: int) -> str:
    """'2.5', '1000': how a quantity reads in messages."""
    return format(to_decimal(micro_units), "f")
