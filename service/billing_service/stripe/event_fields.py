"""The fields of a signed Stripe event that the webhook handlers read, each
checked for its type and bounds before it is used: a signature proves who
sent the payload, not that it is well formed.

A malformed field raises MalformedEvent; the webhook records the event as
`ignored` with the reason and answers 200, so that Stripe stops sending it
(docs/design.md, "Stripe"). Only an event whose id cannot be stored (it is
what the record is kept under) is refused as INVALID_ARGUMENT."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.errors import InvalidArgument

# Stripe's ids and types are short printable ASCII; the columns holding them
# are 255 and 100 characters, and PostgreSQL's text takes no NUL.
ID_RE = re.compile(r"[!-~]{1,255}")
TYPE_RE = re.compile(r"[a-z0-9_.]{1,100}")
TEXT_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{0,500}")
# Bounds around the delivery's signature time (which the library keeps
# within its tolerance of this machine's time): Stripe keeps events, and
# resends them from its dashboard, for 30 days, and signs each delivery
# after it created the event (5 minutes allow for clocks apart).
MAX_AGE = timedelta(days=31)
MAX_AHEAD = timedelta(seconds=300)
UNKNOWN_TYPE = "unknown"


class MalformedEvent(Exception):
    """A field of the event is not what Stripe sends."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.reason = f"malformed event: {field} {problem}"


def event_id(event: Mapping[str, Any]) -> str:
    """The event's id, which its record is kept under."""
    value = event.get("id")
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise InvalidArgument(
            "payload", "the event's id must be 1 to 255 printable ASCII characters"
        )
    return value


def event_type(event: Mapping[str, Any]) -> str:
    value = event.get("type")
    if not isinstance(value, str) or not TYPE_RE.fullmatch(value):
        raise MalformedEvent("type", "is not a Stripe event type")
    return value


def created(event: Mapping[str, Any], signed_at: datetime) -> datetime:
    """When Stripe created the event: within Stripe's 30 days before it
    signed the delivery, not after."""
    value = event.get("created")
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedEvent("created", "is not a whole number of seconds")
    seconds = signed_at.timestamp()
    if not seconds - MAX_AGE.total_seconds() <= value <= seconds + MAX_AHEAD.total_seconds():
        raise MalformedEvent("created", "is more than 31 days old or 5 minutes ahead")
    return datetime.fromtimestamp(value, UTC)


def event_object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return mapping("data", data.get("object") if isinstance(data, dict) else None)


def mapping(field: str, value: Any) -> Mapping[str, Any]:
    """An object (a missing one is empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(field, "is not an object")
    return value


def object_id(field: str, value: Any) -> str:
    """An object's id, whether the object is expanded or not."""
    if isinstance(value, dict):
        field, value = f"{field}.id", value.get("id")
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise MalformedEvent(field, "is not a Stripe id")
    return value


def optional_id(field: str, value: Any) -> str | None:
    """An object's id, or None when the field is empty."""
    return None if value is None or value == "" else object_id(field, value)


def text(field: str, value: Any) -> str | None:
    """A short text without control characters, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not TEXT_RE.fullmatch(value):
        raise MalformedEvent(field, "is not a text of at most 500 characters")
    return value
