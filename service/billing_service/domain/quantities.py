"""Quantities of usage: decimals with at most six places, stored exactly as
integer millionths ("micro-units") everywhere below the API, so that sums
are integer sums and no binary float ever holds a quantity.

A whole-unit call of 3 is stored as 3,000,000; a quota of 1,000 units is a
limit of 1,000,000,000 micro-units. Only the API's edges convert.
"""

from decimal import Decimal, InvalidOperation

PLACES = 6
UNIT = 1_000_000  # 10**PLACES
_QUANTUM = Decimal(1).scaleb(-PLACES)


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


def parse(field: str, text: str, places: int) -> int:
    """A decimal string (`2.5`; not `1e3`, `NaN`) of at most `places`
    decimals, as micro-units."""
    from .errors import InvalidArgument  # errors shows quantities: import here

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidArgument(field, f"'{text[:40]}' is not a decimal number") from None
    if not value.is_finite() or "e" in text.lower():
        raise InvalidArgument(field, f"'{text[:40]}' is not a plain decimal number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise InvalidArgument(field, f"takes at most {places} decimal places, got '{text[:40]}'")
    return int(value.scaleb(PLACES).to_integral_exact())
