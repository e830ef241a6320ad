"""Which way a call goes: one small choice, and a fixed one for tests.

Two routes:
- READ: a check decided from one read (the terms version and the counter's
  usage in one statement), in the caller's own coroutine, under terms this
  process already holds at the version read; when it cannot (terms not
  held, or changed), the check is queued.
- QUEUED: the batch transaction (batch.py), run by the worker task with
  the calls that queued meanwhile (group commit). Every write goes this way.
"""

import enum
from typing import Protocol

from .calls import Call, Kind


class Route(enum.Enum):
    READ = "read"
    QUEUED = "queued"


class Router(Protocol):
    def route(self, call: Call, idle: bool) -> Route:
        """The route for `call`; `idle`: nothing is queued or in the database."""
        ...


class DefaultRouter:
    """Checks read at once while nothing waits for the database; a check
    that arrives while a batch is there joins the next one (its read would
    wait for the connection anyway)."""

    def route(self, call: Call, idle: bool) -> Route:
        return Route.READ if call.kind is Kind.CHECK and idle else Route.QUEUED


class FixedRouter:
    """Every check the given way (as far as the database allows: on
    PostgreSQL a read waits for an idle connection)."""

    def __init__(self, route: Route) -> None:
        self._route = route

    def route(self, call: Call, idle: bool) -> Route:
        return self._route if call.kind is Kind.CHECK else Route.QUEUED
