"""Immutable values that travel through the metering core: a metered call,
what the database holds for it, and what was decided."""

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from ..domain.usage_keys import UsageKey

# Units of usage. Integers today; the one name to change when quantities
# become decimals (as the ledger made them), so that every place that adds them is found.
Quantity = int


class Kind(enum.Enum):
    CHECK = "check"
    CONSUME = "consume"
    RECORD = "record"


@dataclass(frozen=True, slots=True)
class Call:
    """One metered call, as validated by the API layer."""

    kind: Kind
    key: UsageKey
    quantity: Quantity
    at: datetime  # when the usage happens: now, or RecordUsage's occurred_at
    now: datetime
    idempotency_key: str | None = None
    project_id: str | None = None  # the owner's project the usage belongs to
    detail: str | None = None  # JSON stored with the event (an AI call's breakdown)
    # request_digest of the whole request the call is (part of), stored with
    # its idempotency key: a retry replays only the same request.
    digest: str | None = None

    @property
    def writes(self) -> bool:
        return self.kind is not Kind.CHECK


# Built once: json.dumps with options builds an encoder per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode


def request_digest(idempotency_key: str | None, *fields: object) -> str | None:
    """A short digest of every field of a request that changes what it
    records (JSON-encodable values, in a fixed order per kind of request),
    stored with its idempotency key; none without a key (nothing to compare)."""
    if idempotency_key is None:
        return None
    return hashlib.sha256(_COMPACT_JSON(fields).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Group:
    """Metered calls of one request stored all together or not at all (an
    AI call's meters, Envoy's descriptors), in a transaction of their own,
    each event linked to the first (EventRow.call_event_id); a group of one
    call is that call, and joins the other calls' batch (batcher.py,
    _single)."""

    calls: tuple[Call, ...]


@dataclass(frozen=True, slots=True)
class Refund:
    """A RefundUsage call: one stored event to take back."""

    operator_id: int
    event_id: int
    now: datetime


@dataclass(frozen=True, slots=True)
class CounterRow:
    """A usage counter as stored: the usage of its key in [start, end), in
    microseconds since the epoch."""

    start: int
    end: int
    used: Quantity


EMPTY_COUNTER = CounterRow(0, 0, 0)


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored usage event, with the figures answered to its first call
    (replayed to retries of the same idempotency key)."""

    id: int
    tenant_id: str
    primitive: str
    quantity: Quantity
    occurred_at: int
    used_after: Quantity
    quota_limit: Quantity | None
    window_start: int
    window_end: int
    plan_key: str | None
    refunded: bool = False
    project_id: str | None = None
    digest: str | None = None  # None: stored before digests were (migration 0009)
    call_event_id: int | None = None  # the first event of its request, if of several


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to insert: a recorded call and the figures answered to it."""

    call: Call
    used_after: Quantity
    quota_limit: Quantity | None
    window_start: int
    window_end: int
    plan_key: str | None
