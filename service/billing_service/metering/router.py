"""Which way a call goes: one small choice, and a fixed one for tests.

- READ: a check decided from one read (the terms version and the counter's
  usage in one statement), in the caller's own coroutine.
- CONDITIONAL: a ConsumeQuota or RecordUsage without idempotency key written
  by one conditional statement (backend.add_if_room), in the caller's own
  coroutine: it writes only where the batch path would decide the same
  (terms version, period, room under the limit, no threshold crossed:
  decide.writes_at_once).
- QUEUED: the batch transaction (batch.py), run by the worker task with the
  calls that queued meanwhile (group commit).

READ and CONDITIONAL need terms this process already holds at the
database's version; when they cannot decide, the call is queued. Every
route answers what the reference model answers (tests/metering/).
"""

import enum
from typing import Protocol

from .calls import Call, Kind


class Route(enum.Enum):
    READ = "read"
    CONDITIONAL = "conditional"
    QUEUED = "queued"


class Router(Protocol):
    def route(self, call: Call, alone: bool) -> Route:
        """The route for `call`. `alone`: nothing waits for the connection
        now, and hardly anything did when it was released lately, so that a
        batch would have no company."""
        ...


class DefaultRouter:
    """A call that comes alone takes its own short way; calls that come
    together share a batch (one transaction for them all)."""

    def route(self, call: Call, alone: bool) -> Route:
        if not alone:
            return Route.QUEUED
        if call.kind is Kind.CHECK:
            return Route.READ
        return Route.CONDITIONAL if call.idempotency_key is None else Route.QUEUED


class FixedRouter:
    """Every call the given way, where it applies (READ to checks,
    CONDITIONAL to writes without idempotency key); the others queued."""

    def __init__(self, route: Route) -> None:
        self._route = route

    def route(self, call: Call, alone: bool) -> Route:
        if self._route is Route.READ and call.kind is Kind.CHECK:
            return Route.READ
        if self._route is Route.CONDITIONAL and call.writes and call.idempotency_key is None:
            return Route.CONDITIONAL
        return Route.QUEUED
