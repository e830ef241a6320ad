"""The queue of metered calls and the worker task that answers them a batch
at a time: futures, retries, failures. No SQL and no quota rule here.

A failure fails only the calls it concerns: a transient conflict runs the
batch again; a lost database answers the batch's calls UNAVAILABLE (the
database is shared by them all); anything else (a bug, or one call's input
that no check caught) runs each call of the batch alone, so that only the
call that causes it fails. The worker never dies, and every call is answered.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from ..domain.errors import DomainError, StorageUnavailable
from ..domain.models import QuotaDecision, RefundResult, UsageRecorded
from ..domain.usage_keys import UsageKey
from .backend import MeteringBackend, RetryBatch, Transaction
from .batch import BatchResult, run_calls, run_refund
from .batch_forming import BatchForming, WhileArriving
from .calls import Call, Group, Kind, Refund
from .outcomes import group_outcome, outcome
from .router import DefaultRouter, Route, Router
from .short_ways import ShortWays
from .terms_cache import TermsCache

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 512
# A busy database (SQLite: another process holds the write lock) is tried
# again on the next pass of the event loop, twice, then after a pause that
# doubles from 1 ms up to 50 ms: about a second in all.
_FAST_RETRIES = 2
_MAX_ATTEMPTS = _FAST_RETRIES + 12


# Calls come alone while fewer than this many, on average over about as many
# releases of the connection as _RELEASES_AVERAGED, were waiting for it.
_ALONE_BELOW = 0.5
_RELEASES_AVERAGED = 16


@dataclass(eq=False, slots=True)
class Pending:
    job: Call | Group | Refund
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self,
        backend: MeteringBackend,
        cache: TermsCache,
        router: Router | None = None,
        forming: BatchForming | None = None,
    ) -> None:
        self._backend = backend
        self._cache = cache
        self._router = router or DefaultRouter()
        self._forming = forming or WhileArriving()
        self._ways = ShortWays(backend, cache)
        self._queue: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False  # the connection is in use (a batch, or a caller's statement)
        # How many calls were waiting when the connection was released, on
        # average over the last few releases (router.py's `alone`).
        self._waiting = 0.0
        # Told of each batch's size and its oldest call's wait (metrics).
        self.on_batch: Callable[[int, float], None] | None = None
        # Told of each decision's outcome (outcomes.py), in the coroutine of
        # the call that asked (metrics read which API it serves).
        self.on_decision: Callable[[str], None] | None = None

    async def check(self, call: Call) -> QuotaDecision:
        decision = await self._check(call)
        self._decided(outcome(decision))
        return decision

    async def write(self, call: Call) -> UsageRecorded:
        try:
            recorded = await self._write(call)
        except DomainError as error:
            if call.kind is Kind.CONSUME:
                self._decided(outcome(error))
            raise
        if call.kind is Kind.CONSUME:
            self._decided(outcome(recorded))
        return recorded

    async def _check(self, call: Call) -> QuotaDecision:
        if self._router.route(call, self._alone(call)) is Route.READ and self._free():
            decision = await self._read(call)
            if decision is not None:
                return decision
        result = await self._submit(call)
        assert isinstance(result, QuotaDecision)
        return result

    async def _write(self, call: Call) -> UsageRecorded:
        if self._router.route(call, self._alone(call)) is Route.CONDITIONAL and self._free():
            recorded = await self._add_if_room(call)
            if recorded is not None:
                return recorded
        result = await self._submit(call)
        assert isinstance(result, UsageRecorded)
        return result

    async def write_all(self, calls: Sequence[Call]) -> BatchResult:
        """Store every call of `calls` or, when any is refused, none of them:
        the answer to each (a refusal, a recorded call, or for a call not
        stored because of another's refusal, the decision it would have had)
        and the standing of each call decided."""
        result = await self._submit(Group(tuple(calls)))
        assert isinstance(result, BatchResult)
        self._decided(group_outcome(result))
        return result

    async def refund(self, refund: Refund) -> RefundResult:
        result = await self._submit(refund)
        assert isinstance(result, RefundResult)
        return result

    def _decided(self, decision: str | None) -> None:
        if decision is not None and self.on_decision is not None:
            self.on_decision(decision)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        _settle_all(self._queue, StorageUnavailable("the service is shutting down"))
        await self._backend.close()

    async def _read(self, call: Call) -> QuotaDecision | None:
        """The READ route, in the caller's coroutine; None when it cannot
        decide (the batch path will)."""
        ways = self._ways
        if self._backend.never_suspends:
            read = ways.read_now(call)
        else:
            read = await self._on_connection(ways.read(call))
        decisions = ways.checks([call], read)
        return decisions[0] if decisions else None

    async def _checks_read(self, pendings: list[Pending]) -> list[Pending]:
        """A batch of checks, in the worker: one read per counter (as READ
        does); the checks it could not decide are returned, for the batch
        transaction."""
        by_key: dict[UsageKey, list[Pending]] = {}
        for pending in pendings:
            assert isinstance(pending.job, Call)
            by_key.setdefault(pending.job.key, []).append(pending)
        left: list[Pending] = []
        for group in by_key.values():
            calls = [p.job for p in group if isinstance(p.job, Call)]
            try:
                decisions = self._ways.checks(calls, await self._ways.read(calls[0]))
            except RetryBatch:
                decisions = None
            if not decisions:
                left.extend(group)
                continue
            for pending, decision in zip(group, decisions, strict=True):
                _settle(pending, decision)
        return left

    async def _add_if_room(self, call: Call) -> UsageRecorded | None:
        """The CONDITIONAL route; None when it wrote nothing (the batch path
        decides). A failure after the statement was sent is answered as it
        is: whether it committed is unknown, and deciding again could count
        the call twice."""
        planned = self._ways.conditional(call)
        if planned is None:
            return None
        slot, event = planned
        backend, enforce = self._backend, call.kind is Kind.CONSUME
        try:
            if backend.never_suspends:
                added = backend.add_if_room_now(event, slot.version, enforce)
            else:
                added = await self._on_connection(backend.add_if_room(event, slot.version, enforce))
        except RetryBatch:
            return None
        return None if added is None else self._ways.recorded(slot, call, *added)

    async def _on_connection(self, statement: Awaitable[T]) -> T:
        """Await a statement of the caller's own on the one connection (the
        worker's batches wait meanwhile)."""
        self._busy = True
        try:
            return await statement
        finally:
            self._not_busy()

    def _alone(self, call: Call) -> bool:
        """Whether `call` comes alone (router.py). On SQLite a check's read
        waits for nothing, so a check always does."""
        if call.kind is Kind.CHECK and self._backend.never_suspends:
            return True
        return not (self._queue or self._busy) and self._waiting < _ALONE_BELOW

    def _free(self) -> bool:
        """Whether the caller may use the connection now: nothing else is on
        it (SQLite's statements never wait, so it always is)."""
        return self._backend.never_suspends or not (self._queue or self._busy)

    async def _submit(self, job: Call | Group | Refund) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(job, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="metering-worker")
        self._wakeup.set()
        return await future

    def _not_busy(self) -> None:
        self._busy = False
        self._released()
        if self._queue:
            self._wakeup.set()

    def _released(self) -> None:
        self._waiting += (len(self._queue) - self._waiting) / _RELEASES_AVERAGED

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and not self._busy:
                batch: list[Pending] = []
                self._busy = True
                try:
                    await self._forming.gather(self._queue)
                    batch = [p for p in self._queue[:MAX_BATCH] if not p.future.done()]
                    del self._queue[:MAX_BATCH]
                    if self.on_batch is not None and batch:
                        self.on_batch(len(batch), time.monotonic() - batch[0].queued_at)
                    await self._run(batch)
                except Exception:  # a bug of the worker's own: fail its batch, carry on
                    log.exception("metering batch failed")
                    _settle_all(batch, StorageUnavailable("storage unavailable: internal error"))
                finally:
                    self._busy = False
                    self._released()

    async def _run(self, batch: list[Pending]) -> None:
        calls = [p for p in batch if _single(p.job) is not None]
        for pending in batch:
            job = pending.job
            if isinstance(job, Refund):
                await self._run_one(
                    pending, [job.operator_id], partial(run_refund, refund=job, cache=self._cache)
                )
            elif isinstance(job, Group) and len(job.calls) > 1:
                work = partial(run_calls, calls=job.calls, cache=self._cache, all_or_nothing=True)
                await self._run_one(pending, _operators(job.calls), work)
        # One operator per transaction, so that a database sharded by operator
        # (docs/scale.md) serves each on one shard.
        for operator_calls in _by_operator(calls):
            await self._run_calls(operator_calls)

    async def _run_calls(self, pendings: list[Pending]) -> None:
        if all(isinstance(p.job, Call) and not p.job.writes for p in pendings):
            pendings = await self._checks_read(pendings)
            if not pendings:
                return
        calls = [call for p in pendings if (call := _single(p.job)) is not None]
        operator_ids = _operators(calls)
        write = any(call.writes for call in calls)
        try:
            result: BatchResult = await self._attempts(
                operator_ids, write, lambda tx: run_calls(tx, calls, self._cache)
            )
        except DomainError as error:  # the database failed them all
            _settle_all(pendings, error)
            return
        except Exception:
            if len(pendings) > 1:  # find the call that causes it: each alone
                for pending in pendings:
                    await self._run_calls([pending])
                return
            log.exception("metered call failed")
            _settle_all(pendings, StorageUnavailable("storage unavailable: internal error"))
            return
        for index, pending in enumerate(pendings):
            if index not in result.answers:
                continue
            if isinstance(pending.job, Group):  # a group of one: answered as write_all is
                standings = {0: result.standings[index]} if index in result.standings else {}
                _settle(pending, BatchResult({0: result.answers[index]}, standings))
            else:
                _settle(pending, result.answers[index])
        self._queue[:0] = [pendings[i] for i in result.later]

    async def _run_one(
        self,
        pending: Pending,
        operator_ids: list[int],
        work: Callable[[Transaction], Awaitable[T]],
        answer: Callable[[T], object] = lambda result: result,
    ) -> None:
        """A job that runs alone, in a writing transaction of its own."""
        try:
            _settle(pending, answer(await self._attempts(operator_ids, True, work)))
        except DomainError as error:
            _settle(pending, error)
        except Exception:
            log.exception("metering job failed")
            _settle(pending, StorageUnavailable("storage unavailable: internal error"))

    async def _attempts(
        self, operator_ids: list[int], write: bool, work: Callable[[Transaction], Awaitable[T]]
    ) -> T:
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                return await self._backend.transaction(operator_ids, write, work)
            except RetryBatch:
                if attempt < _MAX_ATTEMPTS:
                    await asyncio.sleep(_retry_pause(attempt))
        raise StorageUnavailable("storage is busy; try again")


def _by_operator(pendings: list[Pending]) -> list[list[Pending]]:
    groups: dict[int, list[Pending]] = {}
    for pending in pendings:
        call = _single(pending.job)
        assert call is not None
        groups.setdefault(call.key.operator_id, []).append(pending)
    return list(groups.values())


def _operators(calls: Sequence[Call]) -> list[int]:
    return sorted({call.key.operator_id for call in calls})


def _retry_pause(attempt: int) -> float:
    """Seconds to wait after the attempt-th try found the database busy."""
    if attempt <= _FAST_RETRIES:
        return 0.0
    return min(0.0005 * 2.0 ** (attempt - _FAST_RETRIES), 0.05)


def _single(job: Call | Group | Refund) -> Call | None:
    """The call of a job that is one call: a call, or a group of one (its
    all-or-nothing is the call's own decision), which then takes the batch
    path with the other calls instead of a transaction of its own."""
    if isinstance(job, Call):
        return job
    if isinstance(job, Group) and len(job.calls) == 1:
        return job.calls[0]
    return None


def _settle(pending: Pending, answer: object) -> None:
    if pending.future.done():
        return
    if isinstance(answer, BaseException):
        pending.future.set_exception(answer)
    else:
        pending.future.set_result(answer)


def _settle_all(pendings: Sequence[Pending], error: Exception) -> None:
    for pending in pendings:
        _settle(pending, error)
