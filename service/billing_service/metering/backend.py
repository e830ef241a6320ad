"""What the metering core needs from a database: a transaction of a few
statements, and one read for checks. One implementation per engine
(sqlite/, postgres/); nothing else in the core knows which engine it runs on.

Errors: a backend raises RetryBatch for a transient conflict (a busy
database, a deadlock), StorageUnavailable when the database cannot be
reached or the connection broke (having replaced the connection), and
nothing else for the database's sake."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from ..domain.models import TenantTerms
from ..domain.usage_keys import UsageKey
from .calls import CounterRow, EventRow, NewEvent, Quantity

T = TypeVar("T")


class RetryBatch(Exception):
    """A transient conflict: run the transaction again."""


class Transaction(Protocol):
    async def counters_and_versions(
        self, keys: Sequence[UsageKey], operator_ids: Sequence[int], lock: bool
    ) -> tuple[dict[UsageKey, CounterRow], dict[int, int]]:
        """The counters of `keys` (sorted; locked, and created when missing,
        when `lock`) and the operators' terms versions, read once the locks
        are held."""
        ...

    async def load_terms(
        self, operator_id: int, tenant_ids: Sequence[str]
    ) -> dict[str, TenantTerms]:
        """The terms of the tenants that have a subscription."""
        ...

    async def find_events(
        self, operator_id: int, idempotency_keys: Sequence[str]
    ) -> dict[str, EventRow]: ...

    async def event(self, operator_id: int, event_id: int) -> EventRow | None: ...

    async def call_events(self, operator_id: int, call_event_id: int) -> list[EventRow]:
        """The events of one request recorded as several (EventRow.call_event_id)."""
        ...

    async def sum_events(self, key: UsageKey, start: int, end: int) -> Quantity:
        """The unrefunded usage of `key` that occurred in [start, end)."""
        ...

    async def write(
        self,
        events: Sequence[NewEvent],
        counters: Sequence[tuple[UsageKey, CounterRow]],
        one_request: bool = False,
    ) -> list[int | None]:
        """Insert `events` and store `counters` (locked before); the events'
        ids, None where the idempotency key was taken meanwhile. With
        `one_request`, each event is stored with the first one's id
        (call_event_id)."""
        ...

    async def mark_refunded(self, operator_id: int, event_id: int, now: int) -> bool:
        """Mark the event refunded; False if it already was."""
        ...


class MeteringBackend(Protocol):
    # True where a transaction never suspends (no real I/O waits), so that it
    # may run in a caller's frame: no cancellation can land inside it.
    never_suspends: bool

    async def transaction(
        self,
        operator_ids: Sequence[int],
        write: bool,
        work: Callable[[Transaction], Awaitable[T]],
    ) -> T:
        """Await `work` in one transaction, committed when it returns. In a
        writing one, no terms change of the operators commits between the
        read of their versions (Transaction.counters_and_versions) and the
        commit. Without `write`, statements see the latest commit."""
        ...

    async def read_usage(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        """A check's one read, outside any transaction: the operator's terms
        version and the usage of `key` in [start, end) (None: no operator)."""
        ...

    async def add_if_room(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        """Try to write `event` (its used_after aside) in one atomic step of
        its own: only if the operator's terms are at `version`, the counter
        holds the event's period, and decide.writes_at_once holds. (event id,
        used after), or None when it wrote nothing and the batch path must
        decide. A call without idempotency key only."""
        ...

    def add_if_room_now(
        self, event: NewEvent, version: int, enforce: bool
    ) -> tuple[int, Quantity] | None:
        """add_if_room without a coroutine, where `never_suspends`."""
        ...

    def read_usage_now(self, key: UsageKey, start: int, end: int) -> tuple[int, Quantity] | None:
        """read_usage without a coroutine, where `never_suspends`."""
        ...

    async def close(self) -> None: ...
