"""Reading a request body's JSON with every number bounded in the parse
itself, before anything expands it.

A literal such as `1e100000000` is a few bytes, but written out as the
decimal string a google.type.Decimal carries it is a hundred million digits:
held on the event loop for seconds and hundreds of MiB, before any rule or
key is checked. No field of the API takes a number anywhere near these
bounds (the service's decimals have at most 19 digits either side of the
point, its integers at most 20 digits), so a literal beyond them is refused
as it is read, whatever field it was meant for.
"""

import json
from decimal import Decimal
from typing import Any

MAX_NUMBER_DIGITS = 40
MAX_NUMBER_EXPONENT = 40


class NumberOutOfBounds(ValueError):
    """A JSON number with more digits or a larger exponent than any field takes."""

    def __init__(self, literal: str) -> None:
        shown = literal if len(literal) <= 24 else literal[:24] + "..."
        super().__init__(
            f"the number {shown} is out of bounds: numbers take at most"
            f" {MAX_NUMBER_DIGITS} digits and an exponent from"
            f" -{MAX_NUMBER_EXPONENT} to {MAX_NUMBER_EXPONENT}"
        )


def load_json(body: bytes) -> Any:
    """The body's JSON, numbers with a fraction or exponent as exact Decimals;
    raises ValueError (NumberOutOfBounds for a number beyond the bounds)."""
    return json.loads(
        body, parse_float=_bounded_decimal, parse_int=_bounded_int, parse_constant=_refuse_constant
    )


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise NumberOutOfBounds(literal)
    return int(literal)


def _bounded_decimal(literal: str) -> Decimal:
    # The scanner hands over a JSON number literal: -?digits[.digits][e[+-]digits].
    mantissa, _, exponent = literal.lower().partition("e")
    digits = len(mantissa) - mantissa.startswith("-") - ("." in mantissa)
    exponent_digits = exponent.lstrip("+-")
    if digits > MAX_NUMBER_DIGITS or len(exponent_digits) > len(str(MAX_NUMBER_EXPONENT)):
        raise NumberOutOfBounds(literal)
    if exponent_digits and int(exponent_digits) > MAX_NUMBER_EXPONENT:
        raise NumberOutOfBounds(literal)
    return Decimal(literal)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
