"""Input rules, one function per kind of value. Each raises InvalidArgument
naming the field, so that no bad value reaches storage."""

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from .errors import InvalidArgument
from .models import ALL_PRIMITIVES, DEFAULT_CURRENCY, Price
from .owners import Owner, OwnerKind

KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PRIMITIVE_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
# Text rules are regular expressions so that the OpenAPI document states
# them as they are (gateway/openapi.py). Control characters (C0, DEL, C1) are
# refused everywhere: PostgreSQL cannot store NUL, and no name needs them.
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
CONTROL_RE = re.compile(f"[{_CONTROLS}]")
# Tenant ids appear in REST paths, so '/' is excluded, and spaces at the ends.
# An id is also free of the invisible characters that make two ids look
# alike: zero-width ones, direction marks and overrides, line and paragraph
# separators, the byte order mark.
_INVISIBLE = r"\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
_TENANT_EDGE = rf"[^/\s{_CONTROLS}{_INVISIBLE}]"
_TENANT_INNER = rf"[^/{_CONTROLS}{_INVISIBLE}]"
TENANT_RE = re.compile(rf"{_TENANT_EDGE}|{_TENANT_EDGE}{_TENANT_INNER}{{0,198}}{_TENANT_EDGE}")
# A name has something besides spaces; an external id no spaces at its ends.
NAME_RE = re.compile(rf"[^{_CONTROLS}]*[^\s{_CONTROLS}][^{_CONTROLS}]*")
EXTERNAL_ID_RE = re.compile(rf"([^\s{_CONTROLS}]([^{_CONTROLS}]*[^\s{_CONTROLS}])?)?")
TEXT_RE = re.compile(f"[^{_CONTROLS}]*")

MAX_NAME = 200
MAX_EXTERNAL_ID = 255
MAX_QUANTITY = 1_000_000
MAX_QUOTA = 1_000_000_000_000
MAX_QUOTAS = 100
MAX_LIST_ENTRIES = 100
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def key(field: str, value: str) -> str:
    return _matching(field, value, KEY_RE)


def primitive(field: str, value: str) -> str:
    return _matching(field, value, PRIMITIVE_RE)


def _matching(field: str, value: str, pattern: re.Pattern[str]) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not pattern.fullmatch(value):
        raise InvalidArgument(field, f"'{_clip(value)}' must match {pattern.pattern}")
    return value


def tenant_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not TENANT_RE.fullmatch(value):
        raise InvalidArgument(
            field,
            "must be 1 to 200 characters, without '/', control or invisible characters"
            " or spaces at either end",
        )
    return value


def owner(tenant: str, user: str, organization: str) -> Owner:
    """The one owner a request names: a user (`user_id`, or `tenant_id`, its
    older name) or an organization (`organization_id`)."""
    given = [
        (field, kind, value)
        for field, kind, value in (
            ("tenant_id", OwnerKind.USER, tenant),
            ("user_id", OwnerKind.USER, user),
            ("organization_id", OwnerKind.ORGANIZATION, organization),
        )
        if value
    ]
    if not given:
        raise InvalidArgument("user_id", "one of user_id or organization_id is required")
    if len(given) > 1:
        raise InvalidArgument(
            given[1][0], f"give only one of {' and '.join(field for field, _, _ in given)}"
        )
    field, kind, value = given[0]
    return Owner(kind, tenant_id(field, value))


def name(field: str, value: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_NAME:
        raise InvalidArgument(field, f"must be at most {MAX_NAME} characters")
    if CONTROL_RE.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def external_id(field: str, value: str) -> str | None:
    """An optional id of another system (Stripe): empty means none."""
    if len(value) > MAX_EXTERNAL_ID:
        raise InvalidArgument(field, f"must be at most {MAX_EXTERNAL_ID} characters")
    if value != value.strip():
        raise InvalidArgument(field, "must not start or end with spaces")
    if CONTROL_RE.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value or None


def quantity(field: str, value: int, *, default_one: bool) -> int:
    if value == 0 and default_one:
        return 1
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidArgument(field, f"must be between 1 and {MAX_QUANTITY}, got {value}")
    return value


def quotas(field: str, value: Mapping[str, int]) -> dict[str, int]:
    if len(value) > MAX_QUOTAS:
        raise InvalidArgument(field, f"must have at most {MAX_QUOTAS} entries")
    for prim, limit in value.items():
        primitive(f"{field}[{prim}]", prim)
        if not 0 <= limit <= MAX_QUOTA:
            raise InvalidArgument(
                f"{field}[{prim}]", f"must be between 0 and {MAX_QUOTA}, got {limit}"
            )
    return dict(sorted(value.items()))


def kit_primitives(field: str, value: Iterable[str]) -> tuple[str, ...]:
    items = _at_most_entries(field, value)
    for item in items:
        if item != ALL_PRIMITIVES:
            primitive(field, item)
    return tuple(items)


def permissions(field: str, value: Iterable[str]) -> tuple[str, ...]:
    items = _at_most_entries(field, value)
    for item in items:
        if not item or len(item) > MAX_NAME:
            raise InvalidArgument(field, f"entries must be 1 to {MAX_NAME} characters")
        if CONTROL_RE.search(item):
            raise InvalidArgument(field, "entries must not contain control characters")
    return tuple(items)


def _at_most_entries(field: str, value: Iterable[str]) -> list[str]:
    """The distinct entries, sorted; the limit counts those given, as the
    OpenAPI document's maxItems does."""
    given = list(value)
    if len(given) > MAX_LIST_ENTRIES:
        raise InvalidArgument(field, f"must have at most {MAX_LIST_ENTRIES} entries")
    return sorted(set(given))


def idempotency_key(field: str, value: str) -> str | None:
    if len(value) > MAX_EXTERNAL_ID:
        raise InvalidArgument(field, f"must be at most {MAX_EXTERNAL_ID} characters")
    if CONTROL_RE.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value or None


# Every instant the API takes lies between the Unix epoch and a century
# ahead: period arithmetic stays far from the calendar's ends.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=36_525)
EVENT_ID_RE = re.compile(r"[0-9]{1,18}")


def instant(field: str, value: datetime, now: datetime) -> datetime:
    if not EARLIEST <= value <= now + MAX_AHEAD:
        raise InvalidArgument(field, "must lie between 1970-01-01T00:00:00Z and 100 years from now")
    return value


def event_id(field: str, value: str) -> int:
    """An id this service returned: ASCII digits only."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not EVENT_ID_RE.fullmatch(value):
        raise InvalidArgument(field, "is not an id returned by this service")
    return int(value)


def page_size(field: str, value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument(field, f"must be between 1 and {MAX_PAGE_SIZE}, got {value}")
    return value


def _clip(value: str, limit: int = 70) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


# Decimals are written plainly: digits, an optional sign and point, no exponent.
DECIMAL_RE = re.compile(r"-?[0-9]{1,19}(\.[0-9]{1,19})?")
MAX_UNIT_PRICE = Decimal(1_000_000)
CURRENCY_RE = re.compile(r"[a-z]{3}")


def decimal(
    field: str, text: str, *, places: int, maximum: Decimal, positive: bool = False
) -> Decimal:
    """A google.type.Decimal's value: empty means 0; at most `places`
    decimals; 0 (or more than 0 when `positive`) to `maximum`."""
    if not text:
        text = "0"
    if not DECIMAL_RE.fullmatch(text):
        raise InvalidArgument(field, f"'{_clip(text, 40)}' is not a plain decimal number")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise InvalidArgument(field, "is not a decimal number") from None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise InvalidArgument(field, f"takes at most {places} decimal places, got '{text}'")
    low = "more than 0" if positive else "0"
    if value < 0 or (positive and value == 0) or value > maximum:
        raise InvalidArgument(field, f"must be {low} to {maximum}, got {text}")
    return value


def prices(field: str, value: Mapping[str, tuple[str, str]]) -> dict[str, Price]:
    """Prices by meter key, from (unit_price, included) decimal strings."""
    if len(value) > MAX_QUOTAS:
        raise InvalidArgument(field, f"must have at most {MAX_QUOTAS} entries")
    checked = {}
    for meter, (unit_price, included) in sorted(value.items()):
        primitive(f"{field}[{meter}]", meter)
        checked[meter] = Price(
            decimal(f"{field}[{meter}].unit_price", unit_price, places=6, maximum=MAX_UNIT_PRICE),
            decimal(f"{field}[{meter}].included", included, places=6, maximum=Decimal(MAX_QUOTA)),
        )
    return checked


def currency(field: str, value: str) -> str:
    if not value:
        return DEFAULT_CURRENCY
    if not CURRENCY_RE.fullmatch(value):
        raise InvalidArgument(field, "must be an ISO 4217 code in lower case, such as 'usd'")
    return value
