"""The metered hot path: CheckQuota, ConsumeQuota and RecordUsage, batched.

Every call waits for an answer from the database, but calls that arrive while
a batch is in the database are answered together by the next one: one
transaction, a handful of statements, whatever the batch's size (group
commit). On SQLite, which answers before the next call arrives, a write may
also wait a moment for company (commit_window.py); elsewhere a batch of
checks, or of writes that share counters, may wait out passes of the event
loop that bring nobody (Patience). Within a batch the calls
are decided one after the other, in arrival order, exactly as if each had had
its own transaction:

1. Tenants' terms (subscription, plan, kit) come from a per-process cache,
   checked against `operators.terms_version` in the batch's own transaction,
   so a plan change on any replica applies from the next batch on.
2. The counter rows of the batch are locked (SELECT ... FOR UPDATE on
   PostgreSQL; SQLite's BEGIN IMMEDIATE locks the database), re-keyed when the
   period moved on (recounted from the events), then every call is decided in
   memory against them.
3. The new events are inserted (an idempotency key already committed by
   another replica turns the call into a replay of that answer) and the
   counters written back, then the transaction commits and the callers get
   their answers.

A lone call (a batch of one) of a counter whose terms the process already
holds takes a shorter way: a check (or a batch of checks of one counter) is
decided straight from one read, in the caller's own coroutine while checks
come one at a time (on SQLite, a read kept until the next commit
by any connection: sqlite_commits.py), and a ConsumeQuota or RecordUsage without
idempotency key is one conditional UPDATE of its counter with the event's
INSERT (record_alone), which writes nothing, and leaves the call to the batch
path, whenever that path could decide otherwise. On PostgreSQL a batch of
such calls does the same for all its counters in one statement
(record_together): a counter whose calls all fit is written with their
events, the calls of any other go the batch path.

One dedicated connection per process runs the batches: sqlite3 itself,
called inline (a statement is a few microseconds; a thread hop would cost
more), or asyncpg on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from ..domain.errors import (
    DomainError,
    IdempotencyKeyReused,
    PrimitiveNotPermitted,
    QuotaExceeded,
    StorageUnavailable,
    SubscriptionInactive,
)
from ..domain.instants import from_micros, to_micros
from ..domain.models import (
    DenialReason,
    QuotaDecision,
    Standing,
    TenantTerms,
    UsageRecorded,
    Window,
)
from ..domain.policy import Enforcement
from .commit_window import CommitWindow
from .rows import (
    UsageKey,
    kit_from_row,
    plan_from_row,
    subscription_from_row,
)
from .sqlite_commits import CommitWatch
from .wal_checkpoints import WalCheckpointer

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_TERMS = TenantTerms(None, None, None)
MAX_BATCH = 512
MAX_CACHED_TENANTS = 200_000
MAX_CACHED_RULES = 4 * MAX_CACHED_TENANTS  # a rule per tenant and primitive
# A busy database (SQLite: another process holds the write lock, for a
# transaction of about 100 us) is tried again on the next pass of the event
# loop, up to _FAST_RETRIES times, then after a pause that doubles from 1 ms
# (the loop's shortest timer). Trying on every pass for longer cost more than
# it won (2 cores, 2026-11-30, 16 tries: 20% more calls/s with four callers
# over two processes, 15% fewer with 64, the CPU going to failed tries), and
# under load the pause is a window of its own: calls queue meanwhile.
_FAST_RETRIES = 2
_MAX_ATTEMPTS = _FAST_RETRIES + 12
_MAX_GATHER_PASSES = 8
# A batch of checks, or of writes where the database is a round trip away
# (PostgreSQL), may also wait out passes of the loop that bring nothing
# (Patience): calls come through gRPC one per pass, some passes apart, and a
# call that joins saves a round trip (~100 us of CPU, both sides) while a
# pass costs a few us. Batches wait _QUIET_PASSES while more than
# _WORTH_WAITING of the waits bring a call (a moving average over about 32),
# else one pass but for a probe every _PROBE_SECONDS; and _LONG_QUIET_PASSES
# while the calls that came after the short wait would have ended average
# _LONG_WORTH or more (over about 8 long waits; a probe of the long wait
# every _PROBE_SECONDS otherwise). The calls that come late have been round
# the caller and back: with a few callers, all of them end up in every batch
# and waiting for the last only adds latency; with many, each wait gathers
# several. A write counts as company only when it joins a counter already
# in the batch: one counter row updated for several calls is what the
# batch saves (over many tenants, rows and events cost per call).
# Measured on 2 cores, PostgreSQL, one process, side by side with the code
# before (docs/performance.md, 2026-12-01 10:40 UTC): CheckQuota from 8,200
# to 10,258 calls/s with 16 callers, 8,702 to 10,257 with 8, 8,828 to 10,519
# with 64, with 1 and 4 the same (2,922 / 2,897, 7,799 / 7,687); the hot
# tenant's ConsumeQuota 5,991 to 8,103 with 16 and 5,469 to 6,611 with 64,
# over many tenants the same (5,715 / 5,767 with 16). The short wait alone
# had taken CheckQuota from 3,826 to 4,307 with 16 callers (the afternoon
# before, a slower machine); waiting long always, as with 16 callers, lost
# 10% with 4.
_QUIET_PASSES = 4
_LONG_QUIET_PASSES = 32
_WORTH_WAITING = 0.05
_LONG_WORTH = 2.0
_PROBE_SECONDS = 0.01
_ID_BLOCK = 512
# Checks' reads kept on SQLite until the next commit, at most (a dict entry
# each, ~200 bytes; dropped all at once beyond).
_MAX_KEPT_READS = 65_536


class OpKind(enum.Enum):
    CHECK = "check"
    CONSUME = "consume"
    RECORD = "record"


@dataclass(eq=False, slots=True)
class UsageOp:
    """One metered call waiting for its batch."""

    kind: OpKind
    key: UsageKey
    quantity: int
    at: datetime  # when the usage happens (now, or RecordUsage's occurred_at)
    now: datetime
    idempotency_key: str | None
    future: asyncio.Future[QuotaDecision | UsageRecorded]
    # Set while the batch is decided.
    rule: Enforcement | None = None
    window: Window | None = None
    start: int = 0
    end: int = 0


@dataclass(slots=True)
class Counter:
    """A counter row as the batch sees it: usage in [start, end)."""

    start: int
    end: int
    used: int
    dirty: bool = False
    touched: bool = False  # decided against in this round


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    tenant_id: str
    primitive: str
    quantity: int
    used_after: int
    quota_limit: int | None
    window_start: int
    window_end: int
    plan_key: str | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    op: UsageOp
    used_after: int
    quota_limit: int | None


class RetryBatch(Exception):
    """A transient conflict (lock busy, deadlock): run the batch again."""


class HotPathDb(ABC):
    """The statements the hot path needs, for one database engine."""

    # True when a batch runs start to end without suspending (no real I/O
    # waits), so that it may run in a caller's coroutine: no cancellation can
    # land inside its transaction.
    never_suspends = False
    # Whether the engine implements used_in_window_now: a check's read
    # answered without a coroutine.
    answers_at_once = False
    # Whether the engine implements record_alone, and record_together.
    records_alone = False
    records_together = False

    @abstractmethod
    async def in_transaction(self, write: bool, work: Callable[[], Awaitable[T]]) -> T:
        """Await `work()` in one transaction, committed when it returns (reads
        only, where each statement may see the latest commit, unless `write`).
        A plain method rather than a context manager: an async generator costs
        the event loop's bookkeeping on every call of the hot path."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def terms_versions(self, operator_ids: Sequence[int]) -> dict[int, int]: ...

    @abstractmethod
    async def load_terms(self, operator_id: int, tenant_ids: Sequence[str]) -> list[Any]:
        """Rows of subscriptions ⋈ plans ⟕ account_kits, columns prefixed s_, p_, k_."""

    @abstractmethod
    async def find_events(self, operator_id: int, keys: Sequence[str]) -> dict[str, EventRow]: ...

    @abstractmethod
    async def counters(self, keys: Sequence[UsageKey], lock: bool) -> dict[UsageKey, Counter]:
        """The counter rows of `keys`, created (empty, window 0-0) and locked
        when `lock`; a missing row reads as an empty counter otherwise."""

    async def versions_and_counters(
        self, operator_ids: Sequence[int], keys: Sequence[UsageKey], lock: bool
    ) -> tuple[dict[int, int], dict[UsageKey, Counter]]:
        """terms_versions and counters, which an engine may read in one statement."""
        return await self.terms_versions(operator_ids), await self.counters(keys, lock)

    @abstractmethod
    async def sum_events(self, key: UsageKey, start: int, end: int) -> int: ...

    @abstractmethod
    async def used_in_window(
        self, key: UsageKey, terms_version: int, start: int, end: int
    ) -> int | None:
        """A check's one read (one statement, _USED_IN_WINDOW): the usage of
        `key` in [start, end), or None when the operator's terms are no
        longer at `terms_version` (the caller's rule is stale). Outside a
        transaction: the statement sees the latest commit, which is all a
        check needs."""

    def used_in_window_now(
        self, key: UsageKey, terms_version: int, start: int, end: int
    ) -> int | None:
        """used_in_window without a coroutine, where `answers_at_once`."""
        raise NotImplementedError

    @abstractmethod
    async def insert_events(self, events: Sequence[NewEvent]) -> list[int | None]:
        """Ids of the inserted events; None where the idempotency key was taken."""

    @abstractmethod
    async def write_counters(self, counters: Iterable[tuple[UsageKey, Counter]]) -> None: ...

    async def write_batch(
        self, events: Sequence[NewEvent], counters: Sequence[tuple[UsageKey, Counter]]
    ) -> list[int | None]:
        """insert_events, then write_counters, which an engine may do in one
        statement; the caller writes the counters again if an event was skipped."""
        ids = await self.insert_events(events) if events else []
        await self.write_counters(counters)
        return ids

    async def record_alone(
        self, op: UsageOp, terms_version: int, enforce_limit: bool
    ) -> tuple[int, int] | None:
        """Record `op` (a call without idempotency key, its rule, window and
        bounds set) in one atomic statement of its own, only if nothing the
        batch path would look at differs from what the caller knows: the
        operator's terms_version, the counter's window, and, when
        `enforce_limit`, room under the limit. (event id, used after), or None
        when it recorded nothing and the batch path must decide. Engines
        without such a statement always answer None."""
        return None

    async def record_together(
        self, ops: Sequence[UsageOp], terms_version: int, enforce_limit: bool
    ) -> dict[int, tuple[int, int]]:
        """record_alone for a batch of such calls, all of one operator and one
        kind, in one atomic statement: per counter, all its calls or none.
        {id(op): (event id, used after)} of the calls recorded; the others
        are left to the batch path. Engines without such a statement record
        none."""
        return {}


class UsageBatcher:
    """Queues metered calls and answers them a batch at a time."""

    def __init__(
        self,
        db: HotPathDb,
        rule_for: Callable[[TenantTerms, str], Enforcement],
        window: CommitWindow | None = None,
    ) -> None:
        self._db = db
        self._rule_for = rule_for
        self._window = window
        self._window_asked: int | None = None  # a write asked the worker for a window
        self._window_target = 0  # the calls the open window waits for
        self._window_full: asyncio.Future[bool] | None = None  # the open window
        self._queue: list[UsageOp] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False  # a batch is in the database
        self._terms: dict[tuple[int, str], TenantTerms] = {}
        # The rule each counter is enforced by, derived from _terms and
        # dropped with them, with the window it last applied to.
        self._rules: dict[UsageKey, _RuleSlot] = {}
        self._versions: dict[int, int] = {}
        self._check_patience = Patience()
        self._write_patience = Patience()  # where a write is a round trip
        # Moving average (over about 32 writes): how often a write found
        # another call queued or in the database when it came.
        self._writes_crowded = 0.0

    async def submit(self, op: UsageOp) -> QuotaDecision | UsageRecorded:
        if op.kind is not OpKind.CHECK:
            crowded = self._busy or bool(self._queue)
            self._writes_crowded += (crowded - self._writes_crowded) / 32
        if not self._queue:
            wanted = None
            if op.kind is not OpKind.CHECK and self._window is not None:
                wanted = self._window.open()
            if wanted is not None:
                # Group commit: the worker waits for others to share this
                # write's transaction (commit_window.py says how long).
                self._window_asked = wanted
            elif self._db.never_suspends and not self._busy:
                # No batch is in the database and none is waiting: this call
                # is a batch of one, decided in its own coroutine. Handing it
                # to the worker task would cost the RPC another pass of the
                # event loop. Only where the database work cannot suspend: a
                # caller cancelled (its deadline passed) while its coroutine
                # waits inside a transaction would leave that transaction
                # half-done.
                await self._run_exclusively([op])
                return op.future.result()
            elif (
                # Writes come one at a time and none is in the database: this
                # one is recorded in its own coroutine, as one statement in
                # autocommit (record_alone), rather than the worker's. Going by
                # how often writes find company, not by the write patience,
                # which counts company on one counter only: over many tenants,
                # a batch of several counters saves round trips too. A caller
                # cancelled mid-statement leaves the write done or not done,
                # never half-done (one statement; the connection's next one
                # waits until the cancellation has landed), as a call whose
                # deadline passes may be anyway. When record_alone declines
                # (see _recorded_alone), the call goes to the worker. One
                # caller's ConsumeQuota on PostgreSQL: 12% fewer instructions
                # and, side by side, 10% more calls/s (docs/performance.md).
                op.kind is not OpKind.CHECK
                and self._db.records_alone
                and not self._busy
                and self._writes_crowded < _WORTH_WAITING
                and await self._recorded_exclusively(op)
            ):
                return op.future.result()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="usage-batcher")
        self._queue.append(op)
        full = self._window_full
        if full is not None and not full.done() and len(self._queue) >= self._window_target:
            full.set_result(True)
        self._wakeup.set()
        return await op.future

    async def _run_exclusively(self, batch: list[UsageOp]) -> None:
        """One batch at a time: the calls queued meanwhile form the next."""
        self._busy = True
        try:
            await self._run(batch)
        finally:
            self._busy_no_more()

    async def _recorded_exclusively(self, op: UsageOp) -> bool:
        """_recorded_alone, with the calls queued meanwhile left to the worker."""
        self._busy = True
        try:
            return await self._recorded_alone(op)
        finally:
            self._busy_no_more()

    def _busy_no_more(self) -> None:
        """Nothing is in the database: the calls queued meanwhile go next."""
        self._busy = False
        if self._queue:
            if self._worker is None or self._worker.done():
                self._worker = asyncio.create_task(self._work(), name="usage-batcher")
            self._wakeup.set()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._db.close()

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and not self._busy:
                await self._gather()
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                batch = [op for op in batch if not op.future.done()]  # cancelled callers
                if batch:
                    await self._run_exclusively(batch)

    async def _gather(self) -> None:
        """Let more calls join the queued ones before the next batch."""
        window = self._window
        wanted, self._window_asked = self._window_asked, None
        if window is not None:
            if wanted is None and window.expected > 1:
                wanted = window.expected  # waiting has been paying
            if wanted is not None:
                filled = len(self._queue) >= wanted
                if not filled:
                    loop = asyncio.get_running_loop()
                    full = self._window_full = loop.create_future()
                    self._window_target = wanted
                    timer = loop.call_later(window.seconds, _settle, full, False)
                    try:
                        filled = await full
                    finally:
                        timer.cancel()
                        self._window_full = None
                window.closed(len(self._queue), filled)
                return
        # Let calls already on their way through the event loop join this
        # batch: yield while each pass of the loop brings more, and wait out
        # as many passes that bring none as the patience says (one when
        # calls come one at a time).
        writes = not all(op.kind is OpKind.CHECK for op in self._queue)
        patience: Patience | None = self._check_patience
        if writes:
            patience = None if self._db.never_suspends else self._write_patience
        quiet_passes = patience.quiet_passes() if patience is not None else 1
        counters = {op.key for op in self._queue} if writes and patience is not None else None
        quiet = 0
        late = 0  # calls that came after a pass that brought none
        after_short_wait = 0  # of them, those after _QUIET_PASSES such passes
        for _ in range(max(_MAX_GATHER_PASSES, 2 * quiet_passes)):
            queued = len(self._queue)
            await asyncio.sleep(0)
            if len(self._queue) >= MAX_BATCH:
                break
            if len(self._queue) == queued:
                quiet += 1
                if quiet >= quiet_passes:
                    break
            else:
                joined = _company([op.key for op in self._queue[queued:]], counters)
                if quiet:
                    late += joined
                    if quiet >= _QUIET_PASSES:
                        after_short_wait += joined
        if patience is not None:
            patience.waited(quiet_passes, late, after_short_wait)

    async def _run(self, batch: list[UsageOp]) -> None:
        first = batch[0]
        if first.kind is OpKind.CHECK:
            if _checks_of_one_counter(batch) and await self._checked_together(batch):
                return
        elif len(batch) == 1:
            if self._db.records_alone and await self._recorded_alone(first):
                return
        elif self._db.records_together:
            batch = await self._recorded_together(batch)
            if not batch:
                return
        write = any(op.kind is not OpKind.CHECK for op in batch)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                answers = await self._db.in_transaction(write, lambda: self._decide(batch, write))
                break
            except RetryBatch:
                if attempt == _MAX_ATTEMPTS:
                    answers = {id(op): StorageUnavailable("storage is busy") for op in batch}
                    break
                await asyncio.sleep(_retry_pause(attempt))
            except DomainError as error:
                answers = {id(op): error for op in batch}
                break
            except Exception as error:  # a broken connection, a bug: fail this batch only
                log.exception("usage batch failed")
                failure = StorageUnavailable(f"storage unavailable: {type(error).__name__}")
                answers = {id(op): failure for op in batch}
                break
        for op in batch:
            if op.future.done():
                continue
            answer = answers[id(op)]
            if isinstance(answer, BaseException):
                op.future.set_exception(answer)
            else:
                op.future.set_result(answer)

    async def check(
        self, key: UsageKey, quantity: int, at: datetime, now: datetime
    ) -> QuotaDecision:
        """Whether `quantity` more units fit the counter's quota at `at`.
        Where nothing is queued or in the database and this process holds the
        counter's terms, the check is decided without an operation object, a
        future or the worker: in the caller's frame where the database answers
        without suspending (SQLite: _check_at_once), else in its coroutine
        while checks come one at a time, a wait for company being of one pass
        (PostgreSQL: _checked_alone; two passes of the event loop sooner than
        the worker, and 12% fewer instructions). Any other check is submitted.
        The call made most often: on SQLite, skipping those layers took
        CheckQuota from 8,836 to 9,610 calls/s at c=16 and from 8,783 to
        10,029 at c=64 (2026-12-01, side by side; docs/performance.md)."""
        decision: QuotaDecision | None = None
        if not self._queue and not self._busy:
            if self._db.answers_at_once:
                decision = self._check_at_once(key, quantity, at)
            elif self._check_patience.alone():
                decision = await self._checked_alone(key, quantity, at)
        if decision is not None:
            return decision
        loop = asyncio.get_running_loop()
        result = await self.submit(
            UsageOp(OpKind.CHECK, key, quantity, at, now, None, loop.create_future())
        )
        assert isinstance(result, QuotaDecision)
        return result

    def _check_at_once(self, key: UsageKey, quantity: int, at: datetime) -> QuotaDecision | None:
        """A lone check decided in the caller's frame (SQLite); None: submit it.
        The same read and decision as _checked_together's."""
        known = self._known_window(key, at)
        if known is None:
            return None
        slot, version, window = known
        try:
            used = self._db.used_in_window_now(key, version, slot.start, slot.end)
        except Exception:
            return None  # the batch path reads again, and reports a failure
        return None if used is None else _decided(quantity, slot.rule, window, used)

    async def _checked_alone(
        self, key: UsageKey, quantity: int, at: datetime
    ) -> QuotaDecision | None:
        """A lone check read in the caller's coroutine (PostgreSQL); None:
        submit it. A check writes nothing, so a caller cancelled mid-read
        leaves nothing half-done: asyncpg cancels the statement, and the
        connection's next one waits until it has been."""
        known = self._known_window(key, at)
        if known is None:
            return None
        slot, version, window = known
        db, start, end = self._db, slot.start, slot.end
        self._busy = True
        try:
            used = await db.in_transaction(
                False, lambda: db.used_in_window(key, version, start, end)
            )
        except Exception:
            return None  # the batch path reads again, and reports a failure
        finally:
            self._busy_no_more()
        return None if used is None else _decided(quantity, slot.rule, window, used)

    def _known_window(self, key: UsageKey, at: datetime) -> tuple[_RuleSlot, int, Window] | None:
        """The counter's rule slot, its operator's terms version and the window
        at `at`, where this process holds the counter's terms."""
        slot = self._rules.get(key)
        version = self._versions.get(key.operator_id)
        if slot is None or version is None:
            return None
        return slot, version, slot.window_at(at)

    async def _checked_together(self, checks: list[UsageOp]) -> bool:
        """The fast path of checks of one counter (most often a lone one)
        under terms this process has already seen: the batch path's reads
        (terms_version and the counter, or the events when the counter is of
        another period) in one statement, and each check decided straight
        from it. Changed terms, checks in two periods or a failed read go the
        batch path, which reads again: a check writes nothing, so trying
        twice is harmless."""
        key = checks[0].key
        slot = self._rules.get(key)
        version = self._versions.get(key.operator_id)
        if slot is None or version is None:
            return False
        for op in checks:
            slot.apply_to(op)
        start, end = checks[0].start, checks[0].end
        used: int | None = None
        if all(op.start == start and op.end == end for op in checks):
            db = self._db
            try:
                used = await db.in_transaction(
                    False, lambda: db.used_in_window(key, version, start, end)
                )
            except Exception:
                used = None
        if used is None:
            for op in checks:
                op.rule = op.window = None  # the batch path derives them afresh
            return False
        rule = slot.rule
        for op in checks:
            if not op.future.done():
                assert op.window is not None
                op.future.set_result(_decided(op.quantity, rule, op.window, used))
        return True

    async def _recorded_alone(self, op: UsageOp) -> bool:
        """The fast path of a lone call that records usage without an
        idempotency key, under terms this process has already seen: one
        statement (record_alone), which declines whenever the batch path could
        decide otherwise (terms changed, a new period, no room, a refusal)."""
        if op.kind is OpKind.CHECK or op.idempotency_key is not None:
            return False
        slot = self._rules.get(op.key)
        version = self._versions.get(op.key.operator_id)
        if slot is None or version is None or slot.rule.denial is not None:
            return False
        slot.apply_to(op)
        try:
            recorded = await self._db.record_alone(op, version, op.kind is OpKind.CONSUME)
        except Exception as error:
            _fail_unsure([op], error)
            return True
        return _answer_recorded(op, recorded)

    async def _recorded_together(self, batch: list[UsageOp]) -> list[UsageOp]:
        """The fast path of a batch of calls that record usage without
        idempotency keys, all of one operator and one kind, under terms this
        process has already seen: one statement (record_together). Returns the
        calls it did not answer, for the batch path."""
        kind, operator_id = batch[0].kind, batch[0].key.operator_id
        version = self._versions.get(operator_id)
        if kind is OpKind.CHECK or version is None:
            return batch
        for op in batch:
            slot = self._rules.get(op.key)
            if (
                op.kind is not kind
                or op.idempotency_key is not None
                or op.key.operator_id != operator_id
                or slot is None
                or slot.rule.denial is not None
            ):
                return batch
        for op in batch:
            self._rules[op.key].apply_to(op)
        try:
            recorded = await self._db.record_together(batch, version, kind is OpKind.CONSUME)
        except Exception as error:
            _fail_unsure(batch, error)
            return []
        return [op for op in batch if not _answer_recorded(op, recorded.get(id(op)))]

    async def _decide(self, batch: list[UsageOp], write: bool) -> dict[int, Any]:
        operator_ids = sorted({op.key.operator_id for op in batch})
        counters: dict[UsageKey, Counter] | None
        versions, counters = await self._db.versions_and_counters(
            operator_ids, _sorted_keys(batch), lock=write
        )
        await self._refresh_terms(batch, operator_ids, versions)
        answers: dict[int, Any] = {}
        pending = batch
        for _ in range(len(batch) + 1):
            pending = await self._round(pending, write, answers, counters)
            if not pending:
                return answers
            counters = None  # the next round reads them again
        raise AssertionError("usage batch did not converge")

    async def _refresh_terms(
        self, batch: list[UsageOp], operator_ids: list[int], versions: dict[int, int]
    ) -> None:
        for operator_id in operator_ids:
            version = versions.get(operator_id, 0)
            if self._versions.get(operator_id) != version:
                self._terms = {k: t for k, t in self._terms.items() if k[0] != operator_id}
                self._rules = {k: r for k, r in self._rules.items() if k.operator_id != operator_id}
                self._versions[operator_id] = version
        missing: dict[int, set[str]] = {}
        for op in batch:
            if (op.key.operator_id, op.key.tenant_id) not in self._terms:
                missing.setdefault(op.key.operator_id, set()).add(op.key.tenant_id)
        if len(self._terms) > MAX_CACHED_TENANTS or len(self._rules) > MAX_CACHED_RULES:
            self._terms.clear()
            self._rules.clear()
        for operator_id, tenants in missing.items():
            found = {
                row["s_tenant_id"]: _terms_from_row(row)
                for row in await self._db.load_terms(operator_id, sorted(tenants))
            }
            for tenant in tenants:
                self._terms[(operator_id, tenant)] = found.get(tenant, NO_TERMS)

    async def _round(
        self,
        ops: list[UsageOp],
        write: bool,
        answers: dict[int, Any],
        counters: dict[UsageKey, Counter] | None,
    ) -> list[UsageOp]:
        """Decide what can be decided now; return the calls for the next round.
        `counters`: those of `ops`' keys, already read in this transaction."""
        for op in ops:
            if op.rule is None:
                slot = self._rules.get(op.key)
                if slot is None:
                    terms = self._terms[(op.key.operator_id, op.key.tenant_id)]
                    slot = self._rules[op.key] = _RuleSlot(self._rule_for(terms, op.key.primitive))
                slot.apply_to(op)
        replays = await self._find_replays(ops)
        if counters is None:
            counters = await self._db.counters(_sorted_keys(ops), lock=write)
        deferred: list[UsageOp] = []
        new_events: list[NewEvent] = []
        keys_in_round: set[tuple[int, str]] = set()
        for op in ops:
            rule = op.rule
            assert rule is not None and op.window is not None
            idem = op.idempotency_key
            if idem is not None and op.kind is not OpKind.CHECK:
                found = replays.get((op.key.operator_id, idem))
                if found is not None:
                    answers[id(op)] = _replay(op, found)
                    continue
                if (op.key.operator_id, idem) in keys_in_round:
                    deferred.append(op)  # answered from the first one's event next round
                    continue
            if rule.denial is not None and op.kind is OpKind.CONSUME:
                answers[id(op)] = _denial(op, rule)
                continue
            counter = counters[op.key]
            if (counter.start, counter.end) != (op.start, op.end):
                if counter.touched:
                    deferred.append(op)  # one window per counter and round
                    continue
                counter.used = await self._db.sum_events(op.key, op.start, op.end)
                counter.start, counter.end, counter.dirty = op.start, op.end, True
            counter.touched = True
            standing = Standing(counter.used, rule.limit, op.window, rule.plan_key)
            if op.kind is OpKind.CHECK:
                answers[id(op)] = _check(op.quantity, rule, standing)
                continue
            if (
                op.kind is OpKind.CONSUME
                and rule.limit is not None
                and counter.used + op.quantity > rule.limit
            ):
                answers[id(op)] = QuotaExceeded(op.key.primitive, counter.used, rule.limit)
                continue
            counter.used += op.quantity
            counter.dirty = True
            if idem is not None:
                keys_in_round.add((op.key.operator_id, idem))
            new_events.append(NewEvent(op, counter.used, rule.limit))
        if not write:
            return deferred
        dirty = [(k, c) for k, c in counters.items() if c.dirty]
        ids = await self._db.write_batch(new_events, dirty) if dirty else []
        skipped = False
        for event, event_id in zip(new_events, ids, strict=True):
            op = event.op
            assert op.window is not None and op.rule is not None
            if event_id is None:
                # Another replica committed this idempotency key meanwhile: it
                # is a replay, found in the next round. Give the units back.
                counters[op.key].used -= op.quantity
                deferred.append(op)
                skipped = True
                continue
            standing = Standing(event.used_after, op.rule.limit, op.window, op.rule.plan_key)
            answers[id(op)] = UsageRecorded(event_id, standing, replayed=False)
        if skipped:
            await self._db.write_counters(dirty)
        return deferred

    async def _find_replays(self, ops: list[UsageOp]) -> dict[tuple[int, str], EventRow]:
        wanted: dict[int, set[str]] = {}
        for op in ops:
            if op.idempotency_key is not None and op.kind is not OpKind.CHECK:
                wanted.setdefault(op.key.operator_id, set()).add(op.idempotency_key)
        found: dict[tuple[int, str], EventRow] = {}
        for operator_id, keys in wanted.items():
            for key, row in (await self._db.find_events(operator_id, sorted(keys))).items():
                found[(operator_id, key)] = row
        return found


class Patience:
    """How many passes of the event loop that bring no call a batch waits out
    for company (the constants above say why): one while calls come one at a
    time, _QUIET_PASSES while such a wait brings a call often enough,
    _LONG_QUIET_PASSES while the longer wait brings several more; each longer
    wait is tried now and then."""

    __slots__ = ("_clock", "_long_gain", "_next_long_probe", "_next_probe", "_paying")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._paying = 0.0  # moving average: how often a wait brought a call
        self._long_gain = 0.0  # moving average: calls a long wait brought late
        self._next_probe = 0.0
        self._next_long_probe = 0.0

    def quiet_passes(self) -> int:
        if self._paying < _WORTH_WAITING:
            now = self._clock()
            if now < self._next_probe:
                return 1
            self._next_probe = now + _PROBE_SECONDS
            return _QUIET_PASSES
        if self._long_gain >= _LONG_WORTH:
            return _LONG_QUIET_PASSES
        now = self._clock()
        if now < self._next_long_probe:
            return _QUIET_PASSES
        self._next_long_probe = now + _PROBE_SECONDS
        return _LONG_QUIET_PASSES

    def alone(self) -> bool:
        """Whether calls come one at a time and no probe is due: a wait now
        would be of one pass. (The probes go through quiet_passes.)"""
        return self._paying < _WORTH_WAITING and self._clock() < self._next_probe

    def waited(self, quiet_passes: int, late: int, after_short_wait: int) -> None:
        """A wait of `quiet_passes` ended: `late` calls came after a pass that
        brought none, `after_short_wait` of them after _QUIET_PASSES such."""
        if quiet_passes <= 1:
            return
        self._paying += ((late > 0) - self._paying) / 32
        if late:
            self._paying = max(self._paying, _WORTH_WAITING)
        if quiet_passes >= _LONG_QUIET_PASSES:
            self._long_gain += (after_short_wait - self._long_gain) / 8


def _company(arrived: Sequence[UsageKey], counters: set[UsageKey] | None) -> int:
    """How many of the calls that just joined a batch (their counters'
    keys) keep it company: all of them in a batch of checks (`counters`
    None); in one with writes, those on a counter already in the batch
    (`counters`, which they are added to)."""
    if counters is None:
        return len(arrived)
    joined = 0
    for key in arrived:
        joined += key in counters
        counters.add(key)
    return joined


def _settle(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():
        future.set_result(result)


def _retry_pause(attempt: int) -> float:
    """Seconds to wait after the attempt-th try found the database busy."""
    if attempt <= _FAST_RETRIES:
        return 0.0
    return min(0.0005 * 2.0 ** (attempt - _FAST_RETRIES), 0.05)


def _answer_recorded(op: UsageOp, recorded: tuple[int, int] | None) -> bool:
    """Answer `op` from a fast path's (event id, used after); when that path
    recorded nothing, return False with the op ready for the batch path."""
    if recorded is None:
        op.rule = op.window = None  # the batch path derives them afresh
        return False
    event_id, used = recorded
    assert op.rule is not None and op.window is not None
    standing = Standing(used, op.rule.limit, op.window, op.rule.plan_key)
    if not op.future.done():
        op.future.set_result(UsageRecorded(event_id, standing, replayed=False))
    return True


def _fail_unsure(ops: Sequence[UsageOp], error: Exception) -> None:
    """A fast path's statement failed, and whether it committed is unknown:
    answer a failure rather than decide again and perhaps count twice."""
    log.exception("usage statement failed")
    failure = StorageUnavailable(f"storage unavailable: {type(error).__name__}")
    for op in ops:
        if not op.future.done():
            op.future.set_exception(failure)


def _checks_of_one_counter(ops: list[UsageOp]) -> bool:
    key = ops[0].key
    return all(op.kind is OpKind.CHECK and op.key == key for op in ops)


def _sorted_keys(ops: list[UsageOp]) -> list[UsageKey]:
    """The ops' counters in (operator, tenant, primitive) order: one lock
    order for every replica, so that batches cannot deadlock."""
    if len(ops) == 1:
        return [ops[0].key]
    return sorted({op.key for op in ops})


class _RuleSlot:
    """A counter's rule, and the window (with its bounds in micros) that it
    gave for the last instant asked: calls of one counter nearly always fall
    in the window of the call before."""

    __slots__ = ("end", "rule", "start", "window")

    def __init__(self, rule: Enforcement) -> None:
        self.rule = rule
        self.window: Window | None = None
        self.start = self.end = 0

    def window_at(self, at: datetime) -> Window:
        """The window in force at `at`; `start` and `end` are its bounds after."""
        window = self.window
        if window is None or not window.start <= at < window.end:
            window = self.window = self.rule.window(at)
            self.start, self.end = to_micros(window.start), to_micros(window.end)
        return window

    def apply_to(self, op: UsageOp) -> None:
        """Set `op`'s rule, window and bounds."""
        op.window = self.window_at(op.at)
        op.rule, op.start, op.end = self.rule, self.start, self.end


def _decided(quantity: int, rule: Enforcement, window: Window, used: int) -> QuotaDecision:
    return _check(quantity, rule, Standing(used, rule.limit, window, rule.plan_key))


def _check(quantity: int, rule: Enforcement, standing: Standing) -> QuotaDecision:
    reason = rule.denial
    if reason is None and rule.limit is not None and standing.used + quantity > rule.limit:
        reason = DenialReason.QUOTA_EXCEEDED
    return QuotaDecision(reason is None, reason, standing)


def _denial(op: UsageOp, rule: Enforcement) -> DomainError:
    if rule.denial is DenialReason.SUBSCRIPTION_INACTIVE:
        return SubscriptionInactive(op.key.tenant_id, str(rule.status))
    return PrimitiveNotPermitted(op.key.primitive, rule.account_kit_id or "")


def _replay(op: UsageOp, row: EventRow) -> UsageRecorded | DomainError:
    if (row.tenant_id, row.primitive, row.quantity) != (
        op.key.tenant_id,
        op.key.primitive,
        op.quantity,
    ):
        return IdempotencyKeyReused(op.idempotency_key or "")
    window = Window(from_micros(row.window_start), from_micros(row.window_end))
    return UsageRecorded(
        row.id, Standing(row.used_after, row.quota_limit, window, row.plan_key), replayed=True
    )


def _terms_from_row(row: Any) -> TenantTerms:
    def table(prefix: str) -> SimpleNamespace:
        return SimpleNamespace(
            **{name[2:]: row[name] for name in row.keys() if name.startswith(prefix)}  # noqa: SIM118
        )

    kit = table("k_")
    return TenantTerms(
        subscription=subscription_from_row(table("s_")),
        plan=plan_from_row(table("p_")),
        kit=kit_from_row(kit) if kit.id is not None else None,
    )


_TERMS_COLUMNS = """
    s.tenant_id AS s_tenant_id, s.plan_key AS s_plan_key, s.status AS s_status,
    s.stripe_customer_id AS s_stripe_customer_id,
    s.stripe_subscription_id AS s_stripe_subscription_id,
    s.current_period_end AS s_current_period_end, s.account_kit_id AS s_account_kit_id,
    s.created_at AS s_created_at, s.updated_at AS s_updated_at,
    p.key AS p_key, p.name AS p_name, p.account_kit_id AS p_account_kit_id,
    p.stripe_price_id AS p_stripe_price_id, p.quotas AS p_quotas, p.period AS p_period,
    p.archived AS p_archived, p.created_at AS p_created_at, p.updated_at AS p_updated_at,
    k.id AS k_id, k.name AS k_name, k.primitives AS k_primitives,
    k.permissions AS k_permissions, k.created_at AS k_created_at, k.updated_at AS k_updated_at
FROM subscriptions s
JOIN plans p ON p.operator_id = s.operator_id AND p.key = s.plan_key
LEFT JOIN account_kits k ON k.operator_id = s.operator_id AND k.id = s.account_kit_id
"""

_EVENT_COLUMNS = (
    "id, tenant_id, primitive, quantity, used_after, quota_limit, window_start, window_end,"
    " plan_key, idempotency_key"
)

_SUM_EVENTS = """
SELECT COALESCE(SUM(quantity), 0) FROM usage_events
WHERE operator_id = {0} AND tenant_id = {1} AND primitive = {2}
  AND occurred_at >= {3} AND occurred_at < {4} AND refunded_at IS NULL
"""


def _event_row(row: Any) -> EventRow:
    return EventRow(
        id=row["id"],
        tenant_id=row["tenant_id"],
        primitive=row["primitive"],
        quantity=row["quantity"],
        used_after=row["used_after"],
        quota_limit=row["quota_limit"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        plan_key=row["plan_key"],
    )


# An operator's terms_version and one counter ({0} operator, {1} tenant, {2}
# primitive); a batch of one key reads both in this one statement. The
# counter's row may not exist yet, the operator's always does.
_VERSION_AND_COUNTER = (
    "SELECT o.terms_version, c.window_start, c.window_end, c.used FROM operators o "
    "LEFT JOIN usage_counters c ON c.operator_id = o.id AND c.tenant_id = {1} "
    "AND c.primitive = {2} WHERE o.id = {0}"
)
# SQLite's marks bind in the order they appear: tenant, primitive, operator.
_SQLITE_VERSION_AND_COUNTER = _VERSION_AND_COUNTER.format("?", "?", "?")
_SQLITE_SUM_EVENTS = _SUM_EVENTS.format("?", "?", "?", "?", "?")
_PG_SUM_EVENTS = _SUM_EVENTS.format("$1", "$2", "$3", "$4", "$5")
_PG_VERSION_AND_COUNTER = _VERSION_AND_COUNTER.format("$1", "$2", "$3")

# A check's read: the operator's terms_version and the usage of one counter
# ({0} operator, {1} tenant, {2} primitive) in the window [{3}, {4}): the
# counter's when it holds that window, else the events' sum (a tenant with no
# usage yet this period, or none ever), in the same statement. The sum is a
# subquery of the ELSE branch, which both engines run only when reached.
_USED_IN_WINDOW = """
SELECT o.terms_version,
       CASE WHEN c.window_start = {3} AND c.window_end = {4} THEN c.used
       ELSE (SELECT CAST(COALESCE(SUM(e.quantity), 0) AS BIGINT) FROM usage_events e
             WHERE e.operator_id = {0} AND e.tenant_id = {1} AND e.primitive = {2}
               AND e.occurred_at >= {3} AND e.occurred_at < {4} AND e.refunded_at IS NULL)
       END
FROM operators o
LEFT JOIN usage_counters c ON c.operator_id = o.id AND c.tenant_id = {1} AND c.primitive = {2}
WHERE o.id = {0}
"""
_SQLITE_USED_IN_WINDOW = _USED_IN_WINDOW.format("?1", "?2", "?3", "?4", "?5")
_PG_USED_IN_WINDOW = _USED_IN_WINDOW.format("$1", "$2", "$3", "$4", "$5")


def _used_at_version(row: Any, terms_version: int) -> int | None:
    """A _USED_IN_WINDOW row's usage; None when there is no such operator or
    its terms are no longer at `terms_version`."""
    if row is None or row[0] != terms_version:
        return None
    return int(row[1])


def _version_and_counter(key: UsageKey, row: Any) -> tuple[dict[int, int], dict[UsageKey, Counter]]:
    if row is None:  # no such operator
        return {}, {key: Counter(0, 0, 0)}
    counter = Counter(row[1], row[2], row[3]) if row[1] is not None else Counter(0, 0, 0)
    return {key.operator_id: row[0]}, {key: counter}


def _event_values(event: NewEvent) -> tuple[Any, ...]:
    op = event.op
    assert op.rule is not None
    return (
        op.key.operator_id,
        op.key.tenant_id,
        op.key.primitive,
        op.quantity,
        to_micros(op.at),
        to_micros(op.now),
        op.idempotency_key,
        event.used_after,
        event.quota_limit,
        op.start,
        op.end,
        op.rule.plan_key,
    )


_INSERT_EVENT_COLUMNS = (
    "operator_id, tenant_id, primitive, quantity, occurred_at, recorded_at, idempotency_key,"
    " used_after, quota_limit, window_start, window_end, plan_key"
)


class SqliteHotPath(HotPathDb):
    """sqlite3 called inline on the event loop: statements take microseconds.
    The busy handler is off (it would sleep on the loop); a busy database
    makes the batch retry after an asynchronous pause instead."""

    never_suspends = True
    answers_at_once = True
    records_alone = True

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=0")
        # Checkpoints run in a thread of their own (wal_checkpoints.py).
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = WalCheckpointer(path)
        # A first read has SQLite open the database's shared memory (the -shm
        # file), whose header the watch reads through SQLite's descriptor.
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self._commits = CommitWatch.open(path)  # None: every check reads
        # Checks' reads, good until the next commit (sqlite_commits.py): the
        # usage of (counter, terms_version, window start, end), as of _read_mark.
        self._reads: dict[tuple[UsageKey, int, int, int], int] = {}
        self._read_mark: bytes | None = None

    async def in_transaction(self, write: bool, work: Callable[[], Awaitable[T]]) -> T:
        if not write:
            # Reads only: each statement sees committed data, which is all a
            # check needs; an explicit transaction would cost two statements.
            return await work()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise _busy_or(error) from error
        try:
            result = await work()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            self._conn.execute("ROLLBACK")
            raise _busy_or(error) from error
        return result

    async def close(self) -> None:
        self._checkpointer.close()
        self._conn.close()

    async def terms_versions(self, operator_ids: Sequence[int]) -> dict[int, int]:
        rows = self._conn.execute(
            f"SELECT id, terms_version FROM operators WHERE id IN ({_marks(operator_ids)})",
            tuple(operator_ids),
        )
        return {row[0]: row[1] for row in rows}

    async def load_terms(self, operator_id: int, tenant_ids: Sequence[str]) -> list[Any]:
        return self._conn.execute(
            f"SELECT {_TERMS_COLUMNS} WHERE s.operator_id = ? "
            f"AND s.tenant_id IN ({_marks(tenant_ids)})",
            (operator_id, *tenant_ids),
        ).fetchall()

    async def find_events(self, operator_id: int, keys: Sequence[str]) -> dict[str, EventRow]:
        rows = self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM usage_events WHERE operator_id = ? "
            f"AND idempotency_key IN ({_marks(keys)})",
            (operator_id, *keys),
        )
        return {row["idempotency_key"]: _event_row(row) for row in rows}

    async def versions_and_counters(
        self, operator_ids: Sequence[int], keys: Sequence[UsageKey], lock: bool
    ) -> tuple[dict[int, int], dict[UsageKey, Counter]]:
        if len(keys) != 1:
            return await super().versions_and_counters(operator_ids, keys, lock)
        # The common batch, one counter: one statement.
        key = keys[0]
        row = self._conn.execute(
            _SQLITE_VERSION_AND_COUNTER, (key.tenant_id, key.primitive, key.operator_id)
        ).fetchone()
        return _version_and_counter(key, row)

    async def counters(self, keys: Sequence[UsageKey], lock: bool) -> dict[UsageKey, Counter]:
        found: dict[UsageKey, Counter] = {}
        for key in keys:
            row = self._conn.execute(
                "SELECT window_start, window_end, used FROM usage_counters "
                "WHERE operator_id = ? AND tenant_id = ? AND primitive = ?",
                (key.operator_id, key.tenant_id, key.primitive),
            ).fetchone()
            found[key] = Counter(row[0], row[1], row[2]) if row else Counter(0, 0, 0)
        return found

    async def sum_events(self, key: UsageKey, start: int, end: int) -> int:
        row = self._conn.execute(
            _SQLITE_SUM_EVENTS, (key.operator_id, key.tenant_id, key.primitive, start, end)
        ).fetchone()
        return int(row[0])

    async def used_in_window(
        self, key: UsageKey, terms_version: int, start: int, end: int
    ) -> int | None:
        return self.used_in_window_now(key, terms_version, start, end)

    def used_in_window_now(
        self, key: UsageKey, terms_version: int, start: int, end: int
    ) -> int | None:
        mark = None
        if self._commits is not None and not self._conn.in_transaction:
            # Taken before the read: an answer kept under it is at least as new.
            mark = self._commits.mark()
            if mark is not None:
                if mark != self._read_mark:  # a commit since: forget every read
                    self._reads.clear()
                    self._read_mark = mark
                else:
                    kept = self._reads.get((key, terms_version, start, end))
                    if kept is not None:
                        return kept
        row = self._conn.execute(
            _SQLITE_USED_IN_WINDOW, (key.operator_id, key.tenant_id, key.primitive, start, end)
        ).fetchone()
        used = _used_at_version(row, terms_version)
        if mark is not None and used is not None:
            if len(self._reads) >= _MAX_KEPT_READS:
                self._reads.clear()
            self._reads[key, terms_version, start, end] = used
        return used

    async def insert_events(self, events: Sequence[NewEvent]) -> list[int | None]:
        ids: list[int | None] = []
        for event in events:
            row = self._conn.execute(_SQLITE_INSERT_EVENT, _event_values(event)).fetchone()
            ids.append(row[0] if row else None)
        return ids

    async def write_counters(self, counters: Iterable[tuple[UsageKey, Counter]]) -> None:
        self._conn.executemany(
            "INSERT INTO usage_counters "
            "(operator_id, tenant_id, primitive, window_start, window_end, used) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (operator_id, tenant_id, primitive) DO UPDATE SET "
            "window_start = excluded.window_start, window_end = excluded.window_end, "
            "used = excluded.used",
            [
                (k.operator_id, k.tenant_id, k.primitive, c.start, c.end, c.used)
                for k, c in counters
            ],
        )

    async def record_alone(
        self, op: UsageOp, terms_version: int, enforce_limit: bool
    ) -> tuple[int, int] | None:
        # SQLite has no data-modifying CTE, so: a transaction of straight
        # statements, without the batch path's reading and deciding. The
        # UPDATE holds the conditions of PostgreSQL's statement; when it
        # matches nothing, nothing was written and the batch path decides.
        # A busy database is the batch path's to wait for, too.
        assert op.rule is not None
        limit = op.rule.limit
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                return None
            raise
        try:
            counter = conn.execute(
                _SQLITE_ADD_TO_COUNTER,
                {
                    "quantity": op.quantity,
                    "operator": op.key.operator_id,
                    "tenant": op.key.tenant_id,
                    "primitive": op.key.primitive,
                    "start": op.start,
                    "end": op.end,
                    "enforce": enforce_limit,
                    "limit": limit,
                    "version": terms_version,
                },
            ).fetchone()
            if counter is None:
                conn.execute("ROLLBACK")
                return None
            values = _event_values(NewEvent(op, counter[0], limit))
            (event_id,) = conn.execute(_SQLITE_INSERT_EVENT, values).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return event_id, counter[0]


_SQLITE_ADD_TO_COUNTER = (
    "UPDATE usage_counters SET used = used + :quantity "
    "WHERE operator_id = :operator AND tenant_id = :tenant AND primitive = :primitive "
    "AND window_start = :start AND window_end = :end "
    "AND (NOT :enforce OR :limit IS NULL OR used + :quantity <= :limit) "
    "AND EXISTS (SELECT 1 FROM operators WHERE id = :operator AND terms_version = :version) "
    "RETURNING used"
)
# No row back when the event's idempotency key is taken.
_SQLITE_INSERT_EVENT = (
    f"INSERT INTO usage_events ({_INSERT_EVENT_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


def _busy_or(error: sqlite3.OperationalError) -> Exception:
    return RetryBatch() if _is_busy(error) else error


class PostgresHotPath(HotPathDb):
    """asyncpg on one dedicated connection; set-based statements over arrays,
    so a batch costs the same few round trips whatever its size."""

    records_alone = True
    records_together = True

    def __init__(self, url: str) -> None:
        self._connect_args = _asyncpg_connect_args(url)
        self._conn: asyncpg.Connection | None = None
        self._ids: list[int] = []

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            try:
                self._conn = await asyncpg.connect(**self._connect_args)
            except (OSError, asyncpg.PostgresError) as error:
                raise StorageUnavailable(f"storage unavailable: {error}") from error
        return self._conn

    async def _idle_connection(self) -> asyncpg.Connection:
        """The connection, outside any transaction."""
        conn = await self._connection()
        if conn.is_in_transaction():
            # Something left a transaction open (it should not happen: batches
            # run in the worker task, which nothing cancels mid-batch). Never
            # build on it: start again on a new connection.
            await self._reset()
            conn = await self._connection()
        return conn

    async def in_transaction(self, write: bool, work: Callable[[], Awaitable[T]]) -> T:
        conn = await self._idle_connection()
        if not write:
            # Reads only: each statement sees committed data, which is all a
            # check needs; BEGIN and COMMIT would be two more round trips.
            return await work()
        try:
            # Plain statements rather than asyncpg's transaction manager, which
            # turns a transaction into a savepoint of any it still believes open.
            await conn.execute("BEGIN")
            try:
                result = await work()
            except BaseException:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            return result
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as error:
            raise RetryBatch() from error
        except (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError):
            await self._reset()
            raise

    async def _reset(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def terms_versions(self, operator_ids: Sequence[int]) -> dict[int, int]:
        conn = await self._connection()
        rows = await conn.fetch(
            "SELECT id, terms_version FROM operators WHERE id = ANY($1::int[])", operator_ids
        )
        return {row["id"]: row["terms_version"] for row in rows}

    async def load_terms(self, operator_id: int, tenant_ids: Sequence[str]) -> list[Any]:
        conn = await self._connection()
        return list(
            await conn.fetch(
                f"SELECT {_TERMS_COLUMNS} WHERE s.operator_id = $1 "
                "AND s.tenant_id = ANY($2::text[])",
                operator_id,
                tenant_ids,
            )
        )

    async def find_events(self, operator_id: int, keys: Sequence[str]) -> dict[str, EventRow]:
        conn = await self._connection()
        rows = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM usage_events WHERE operator_id = $1 "
            "AND idempotency_key = ANY($2::text[])",
            operator_id,
            keys,
        )
        return {row["idempotency_key"]: _event_row(row) for row in rows}

    async def versions_and_counters(
        self, operator_ids: Sequence[int], keys: Sequence[UsageKey], lock: bool
    ) -> tuple[dict[int, int], dict[UsageKey, Counter]]:
        conn = await self._connection()
        if len(keys) == 1 and not lock:
            # Checks of one counter: the plain join, cheaper for the server than the CTE.
            key = keys[0]
            row = await conn.fetchrow(
                _PG_VERSION_AND_COUNTER, key.operator_id, key.tenant_id, key.primitive
            )
            return _version_and_counter(key, row)
        # One round trip: the counter rows (locked in the CTE when `lock`),
        # then one row per operator with its terms_version in `used`.
        rows = await conn.fetch(
            f"WITH c AS ({_pg_select_counters(lock)}) SELECT * FROM c UNION ALL "
            "SELECT id, NULL, NULL, 0, 0, terms_version FROM operators WHERE id = ANY($4::int[])",
            [k.operator_id for k in keys],
            [k.tenant_id for k in keys],
            [k.primitive for k in keys],
            operator_ids,
        )
        versions: dict[int, int] = {}
        found: dict[UsageKey, Counter] = {}
        for r in rows:
            if r["tenant_id"] is None:
                versions[r["operator_id"]] = r["used"]
            else:
                key = UsageKey(r["operator_id"], r["tenant_id"], r["primitive"])
                found[key] = Counter(r["window_start"], r["window_end"], r["used"])
        if lock and len(found) < len(keys):
            return versions, await self.counters(keys, lock)  # creates the missing rows
        return versions, {key: found.get(key) or Counter(0, 0, 0) for key in keys}

    async def counters(self, keys: Sequence[UsageKey], lock: bool) -> dict[UsageKey, Counter]:
        conn = await self._connection()
        columns = (
            [k.operator_id for k in keys],
            [k.tenant_id for k in keys],
            [k.primitive for k in keys],
        )
        found = await self._fetch_counters(conn, columns, lock)
        missing = [key for key in keys if key not in found]
        if lock and missing:
            # Rows must exist to be locked: create the missing ones, empty,
            # then lock them too (a concurrent creator may have won).
            await conn.execute(
                "INSERT INTO usage_counters "
                "(operator_id, tenant_id, primitive, window_start, window_end, used) "
                "SELECT o, t, p, 0, 0, 0 FROM unnest($1::int[], $2::text[], $3::text[]) "
                "AS k(o, t, p) ORDER BY o, t, p ON CONFLICT DO NOTHING",
                [k.operator_id for k in missing],
                [k.tenant_id for k in missing],
                [k.primitive for k in missing],
            )
            found.update(await self._fetch_counters(conn, columns, lock))
        return {key: found.get(key) or Counter(0, 0, 0) for key in keys}

    async def _fetch_counters(
        self, conn: asyncpg.Connection, columns: tuple[list[Any], ...], lock: bool
    ) -> dict[UsageKey, Counter]:
        rows = await conn.fetch(_pg_select_counters(lock), *columns)
        return {
            UsageKey(r["operator_id"], r["tenant_id"], r["primitive"]): Counter(
                r["window_start"], r["window_end"], r["used"]
            )
            for r in rows
        }

    async def sum_events(self, key: UsageKey, start: int, end: int) -> int:
        conn = await self._connection()
        total = await conn.fetchval(
            _PG_SUM_EVENTS,
            key.operator_id,
            key.tenant_id,
            key.primitive,
            start,
            end,
        )
        return int(total)

    async def used_in_window(
        self, key: UsageKey, terms_version: int, start: int, end: int
    ) -> int | None:
        conn = await self._connection()
        row = await conn.fetchrow(
            _PG_USED_IN_WINDOW, key.operator_id, key.tenant_id, key.primitive, start, end
        )
        return _used_at_version(row, terms_version)

    async def insert_events(self, events: Sequence[NewEvent]) -> list[int | None]:
        return await self.write_batch(events, [])

    async def write_batch(
        self, events: Sequence[NewEvent], counters: Sequence[tuple[UsageKey, Counter]]
    ) -> list[int | None]:
        if not events:
            await self.write_counters(counters)
            return []
        # One round trip: the events' INSERT, and the counters' UPDATE in a
        # data-modifying CTE.
        conn = await self._connection()
        ids = await self._take_ids(conn, len(events))
        values = list(zip(*(_event_values(e) for e in events), strict=True))
        if counters:
            sql = f"WITH e AS ({_PG_INSERT_EVENTS}), c AS ({_pg_update_counters(14)}) "
            sql += "SELECT id FROM e"
            rows = await conn.fetch(sql, ids, *values, *_counter_columns(counters))
        else:
            rows = await conn.fetch(_PG_INSERT_EVENTS, ids, *values)
        inserted = {row["id"] for row in rows}
        return [i if i in inserted else None for i in ids]

    async def _take_ids(self, conn: asyncpg.Connection, count: int) -> list[int]:
        """Event ids, drawn before inserting so that each event's id is known
        exactly, even when a taken idempotency key skips its row. They come
        from the sequence a block at a time, so most batches need no trip
        for them; a stopped process leaves gaps, which ids may have."""
        while len(self._ids) < count:
            block = max(count - len(self._ids), _ID_BLOCK)
            rows = await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('usage_events', 'id')) "
                "FROM generate_series(1, $1)",
                block,
            )
            self._ids.extend(row[0] for row in rows)
        taken, self._ids = self._ids[:count], self._ids[count:]
        return taken

    async def write_counters(self, counters: Iterable[tuple[UsageKey, Counter]]) -> None:
        rows = list(counters)
        if not rows:
            return
        conn = await self._connection()
        await conn.execute(_pg_update_counters(1), *_counter_columns(rows))

    async def record_alone(
        self, op: UsageOp, terms_version: int, enforce_limit: bool
    ) -> tuple[int, int] | None:
        # One round trip in autocommit, instead of BEGIN, the locking read, the
        # write and COMMIT. The UPDATE takes the counter's row lock, and under
        # READ COMMITTED re-checks its conditions on the latest committed row,
        # so concurrent batches and statements serialize on it exactly.
        conn = await self._idle_connection()
        assert op.rule is not None
        values = _event_values(NewEvent(op, 0, op.rule.limit))
        try:
            (event_id,) = await self._take_ids(conn, 1)
            row = await conn.fetchrow(
                _PG_RECORD_ALONE,
                event_id,
                *values[:7],  # up to the idempotency key
                *values[8:],  # after used_after
                terms_version,
                enforce_limit,
            )
        except (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError):
            await self._reset()
            raise
        return None if row is None else (event_id, row["used_after"])

    async def record_together(
        self, ops: Sequence[UsageOp], terms_version: int, enforce_limit: bool
    ) -> dict[int, tuple[int, int]]:
        # One round trip in autocommit for the whole batch, where the batch
        # path takes four (BEGIN, the locking read, the write, COMMIT).
        by_key: dict[UsageKey, list[UsageOp]] = {}
        for op in ops:
            by_key.setdefault(op.key, []).append(op)
        # A counter holds one window: RecordUsage calls of one counter in two
        # periods are left to the batch path.
        keys = [k for k, calls in by_key.items() if len({(o.start, o.end) for o in calls}) == 1]
        if not keys:
            return {}
        units: list[int] = []  # per key: its calls' units
        rules: list[Enforcement] = []  # per key (one counter, one rule)
        events: list[UsageOp] = []
        later: list[int] = []  # per event: the units of its counter's calls after it
        for key in keys:
            calls = by_key[key]
            assert calls[0].rule is not None
            rules.append(calls[0].rule)
            remaining = sum(op.quantity for op in calls)
            units.append(remaining)
            for op in calls:
                remaining -= op.quantity
                events.append(op)
                later.append(remaining)
        conn = await self._idle_connection()
        try:
            ids = await self._take_ids(conn, len(events))
            rows = await conn.fetch(
                _PG_RECORD_TOGETHER,
                ops[0].key.operator_id,
                terms_version,
                enforce_limit,
                [k.tenant_id for k in keys],
                [k.primitive for k in keys],
                units,
                [rule.limit for rule in rules],
                [by_key[k][0].start for k in keys],
                [by_key[k][0].end for k in keys],
                [rule.plan_key for rule in rules],
                ids,
                [op.key.tenant_id for op in events],
                [op.key.primitive for op in events],
                [op.quantity for op in events],
                [to_micros(op.at) for op in events],
                [to_micros(op.now) for op in events],
                later,
            )
        except (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError):
            await self._reset()
            raise
        used = {(row["tenant_id"], row["primitive"]): row["used"] for row in rows}
        recorded: dict[int, tuple[int, int]] = {}
        for op, event_id, units_after in zip(events, ids, later, strict=True):
            total = used.get((op.key.tenant_id, op.key.primitive))
            if total is not None:
                recorded[id(op)] = (event_id, total - units_after)
        return recorded


_PG_INSERT_EVENTS = (
    f"INSERT INTO usage_events (id, {_INSERT_EVENT_COLUMNS}) "
    "SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[],"
    " $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[],"
    " $10::bigint[], $11::bigint[], $12::bigint[], $13::text[]) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


# $1 the event id, $2-$12 its columns but used_after (the counter's new
# value), $13 the terms_version the caller's rule comes from, $14 whether the
# limit ($9) applies.
_PG_RECORD_ALONE = f"""
WITH v AS (SELECT 1 FROM operators WHERE id = $2 AND terms_version = $13),
u AS (
    UPDATE usage_counters SET used = used + $5
    WHERE operator_id = $2 AND tenant_id = $3 AND primitive = $4
      AND window_start = $10 AND window_end = $11
      AND (NOT $14::bool OR $9::bigint IS NULL OR used + $5 <= $9::bigint)
      AND EXISTS (SELECT 1 FROM v)
    RETURNING used
)
INSERT INTO usage_events (id, {_INSERT_EVENT_COLUMNS})
SELECT $1, $2, $3, $4, $5, $6, $7, $8, u.used, $9, $10, $11, $12 FROM u
RETURNING used_after
"""


# The counters of a batch of one operator ($1) at terms_version $2, per key
# ($4-$10: tenant, primitive, units of its calls, limit, window start and end,
# plan), locked in the batch path's order and kept only where the window is
# the callers' and, when $3, all the units fit; then those counters' UPDATE
# and the events of their calls ($11-$17: id, tenant, primitive, quantity,
# occurred_at, recorded_at, and the units of the counter's calls after it).
# Under READ COMMITTED the locking read re-checks its conditions on the
# latest committed row, so concurrent statements serialize on each counter.
_PG_RECORD_TOGETHER = f"""
WITH l AS MATERIALIZED (
    SELECT c.tenant_id, c.primitive, c.used + k.q AS used, k.lim, k.s, k.e, k.plan
    FROM usage_counters c
    JOIN unnest($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
                $9::bigint[], $10::text[]) AS k(t, p, q, lim, s, e, plan)
      ON c.tenant_id = k.t AND c.primitive = k.p
    WHERE c.operator_id = $1 AND c.window_start = k.s AND c.window_end = k.e
      AND (NOT $3::bool OR k.lim IS NULL OR c.used + k.q <= k.lim)
      AND EXISTS (SELECT 1 FROM operators WHERE id = $1 AND terms_version = $2)
    ORDER BY c.operator_id, c.tenant_id, c.primitive
    FOR UPDATE OF c
),
u AS (
    UPDATE usage_counters c SET used = l.used FROM l
    WHERE c.operator_id = $1 AND c.tenant_id = l.tenant_id AND c.primitive = l.primitive
    RETURNING l.tenant_id, l.primitive, l.used, l.lim, l.s, l.e, l.plan
),
e AS (
    INSERT INTO usage_events (id, {_INSERT_EVENT_COLUMNS})
    SELECT x.id, $1, x.t, x.p, x.q, x.at, x.now, NULL, u.used - x.later, u.lim, u.s, u.e, u.plan
    FROM unnest($11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::bigint[],
                $16::bigint[], $17::bigint[]) AS x(id, t, p, q, at, now, later)
    JOIN u ON u.tenant_id = x.t AND u.primitive = x.p
)
SELECT tenant_id, primitive, used FROM u
"""


def _pg_select_counters(lock: bool) -> str:
    """The counter rows of the keys in $1-$3 (arrays of operator, tenant,
    primitive), in lock order, locked when `lock`."""
    return (
        "SELECT c.operator_id, c.tenant_id, c.primitive, c.window_start, c.window_end, c.used "
        "FROM usage_counters c "
        "JOIN unnest($1::int[], $2::text[], $3::text[]) AS k(o, t, p) "
        "ON c.operator_id = k.o AND c.tenant_id = k.t AND c.primitive = k.p "
        "ORDER BY c.operator_id, c.tenant_id, c.primitive" + (" FOR UPDATE OF c" if lock else "")
    )


def _pg_update_counters(first: int) -> str:
    """The counters' UPDATE, its six array parameters numbered from `first`."""
    p = [f"${first + i}" for i in range(6)]
    return (
        "UPDATE usage_counters c SET window_start = v.s, window_end = v.e, used = v.u "
        f"FROM unnest({p[0]}::int[], {p[1]}::text[], {p[2]}::text[], {p[3]}::bigint[],"
        f" {p[4]}::bigint[], {p[5]}::bigint[]) AS v(o, t, p, s, e, u) "
        "WHERE c.operator_id = v.o AND c.tenant_id = v.t AND c.primitive = v.p"
    )


def _counter_columns(rows: Sequence[tuple[UsageKey, Counter]]) -> tuple[list[Any], ...]:
    return (
        [k.operator_id for k, _ in rows],
        [k.tenant_id for k, _ in rows],
        [k.primitive for k, _ in rows],
        [c.start for _, c in rows],
        [c.end for _, c in rows],
        [c.used for _, c in rows],
    )


def _asyncpg_connect_args(url: str) -> dict[str, Any]:
    """asyncpg.connect's arguments for `url`, as SQLAlchemy derives them for
    the Store's connections: the query string's options too (a Unix socket's
    `host`, `port`, `ssl`, ...), so that both reach the same server the same
    way. Less SQLAlchemy's own options, which asyncpg does not take."""
    parsed = make_url(url)
    _, options = parsed.get_dialect()().create_connect_args(parsed)
    for sqlalchemy_only in (
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
        "async_creator_fn",
    ):
        options.pop(sqlalchemy_only, None)
    return dict(options)


def open_hot_path(url: str) -> HotPathDb:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("the SQLite database must be a file (shared by connections)")
        return SqliteHotPath(parsed.database)
    return PostgresHotPath(url)
