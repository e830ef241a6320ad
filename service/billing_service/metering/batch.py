"""One transaction of metered calls, whatever the database: lock the
counters (in key order, so that batches cannot deadlock), read the terms
versions once the locks are held, find replayed idempotency keys, decide
every call with decide.py, write the events and counters.

A counter row holds the usage of its key in one period [start, end): the
sum of the unrefunded events that occurred in it. A call of another period
is decided against the events' sum for that period, and the row moves to
the latest period written."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..domain.errors import DomainError, InvalidArgument, NotFound
from ..domain.instants import from_micros, to_micros
from ..domain.models import QuotaDecision, RefundResult, Standing, UsageRecorded
from ..domain.usage_keys import UsageKey
from .backend import RetryBatch, Transaction
from .calls import Call, CounterRow, EventRow, NewEvent, Quantity, Refund
from .decide import Bounds, Verdict, decide, replay
from .terms_cache import NO_TERMS, RuleSlot, TermsCache

Answer = QuotaDecision | UsageRecorded | DomainError


@dataclass
class BatchResult:
    answers: dict[int, Answer] = field(default_factory=dict)  # by the call's index
    standings: dict[int, Standing] = field(default_factory=dict)  # of the calls decided
    later: list[int] = field(default_factory=list)  # calls for the next batch


async def run_calls(
    tx: Transaction, calls: Sequence[Call], cache: TermsCache, all_or_nothing: bool = False
) -> BatchResult:
    """Decide and store `calls`; with `all_or_nothing`, store none of them
    when any is refused (the others are then answered with the standing
    they would have had, as a check is)."""
    write = any(call.writes for call in calls)
    keys = sorted({call.key for call in calls})
    counters, versions = await tx.counters_and_versions(
        keys, sorted({key.operator_id for key in keys}), lock=write
    )
    slots = await rule_slots(tx, cache, keys, versions)
    result = BatchResult()
    replays = await _replays(tx, calls) if write else {}
    by_key = _sort_out_replays(calls, replays, result)
    if all_or_nothing and result.later:
        raise InvalidArgument("idempotency_key", "is used twice in one request")
    events: list[tuple[int, NewEvent]] = []
    moved: list[tuple[UsageKey, CounterRow]] = []
    for key, indexes in by_key.items():
        usage = PeriodUsage(counters[key])
        for bounds, group in _by_period(slots[key], calls, indexes, result.answers):
            used = await usage.in_period(tx, key, bounds)
            verdicts, _ = decide(slots[key].rule, bounds, used, [calls[i] for i in group])
            for index, verdict in zip(group, verdicts, strict=True):
                result.answers[index] = answer_of(verdict)
                result.standings[index] = verdict.standing
                if verdict.event is not None:
                    usage.add(verdict.event)
                    events.append((index, verdict.event))
        if usage.changed:
            moved.append((key, usage.row()))
    if all_or_nothing and any(isinstance(a, DomainError) for a in result.answers.values()):
        return result
    if events or moved:
        await _store(tx, events, moved, result, one_request=all_or_nothing and len(events) > 1)
    return result


def _sort_out_replays(
    calls: Sequence[Call], replays: dict[tuple[int, str], EventRow], result: BatchResult
) -> dict[UsageKey, list[int]]:
    """Answer the replays of stored idempotency keys; the other calls by
    counter, in arrival order. A key used twice in the batch sends that call
    and those after it to the next batch (`result.later`), which sees what
    the first one did."""
    by_key: dict[UsageKey, list[int]] = {}
    seen: set[tuple[int, str]] = set()
    for index, call in enumerate(calls):
        if call.writes and call.idempotency_key is not None:
            idem = (call.key.operator_id, call.idempotency_key)
            if idem in replays:
                result.answers[index] = replay(call, replays[idem])
                continue
            if idem in seen:
                result.later = list(range(index, len(calls)))
                break
            seen.add(idem)
        by_key.setdefault(call.key, []).append(index)
    return by_key


async def _store(
    tx: Transaction,
    events: list[tuple[int, NewEvent]],
    moved: list[tuple[UsageKey, CounterRow]],
    result: BatchResult,
    one_request: bool,
) -> None:
    """Write the events and counters; answer each recorded call with its id."""
    ids = await tx.write([event for _, event in events], moved, one_request)
    if None in ids:
        raise RetryBatch()  # another replica took a key meanwhile: it is a replay now
    for (index, _), event_id in zip(events, ids, strict=True):
        decision = result.answers[index]
        assert isinstance(decision, QuotaDecision) and event_id is not None
        result.answers[index] = UsageRecorded(event_id, decision.standing, replayed=False)


async def run_refund(tx: Transaction, refund: Refund, cache: TermsCache) -> RefundResult:
    """Void the event and, when its request was recorded as several events
    (an AI call), every event of that request."""
    operator_id = refund.operator_id
    asked = await tx.event(operator_id, refund.event_id)
    if asked is None:
        raise NotFound("usage event", str(refund.event_id))
    events = [asked]
    if asked.call_event_id is not None:
        events = await tx.call_events(operator_id, asked.call_event_id)
    keys = sorted({_key_of(operator_id, event) for event in events})
    counters, versions = await tx.counters_and_versions(keys, [operator_id], lock=True)
    usages = {key: PeriodUsage(counters[key]) for key in keys}
    refunded = False
    for event in events:
        if await tx.mark_refunded(operator_id, event.id, to_micros(refund.now)):
            usages[_key_of(operator_id, event)].take_back(event)
            refunded = True
    moved = [(key, usage.row()) for key, usage in usages.items() if usage.changed]
    if moved:  # the events lay in their counters' periods
        await tx.write([], moved)
    key = _key_of(operator_id, asked)
    slot = (await rule_slots(tx, cache, [key], versions))[key]
    bounds = slot.bounds_at(from_micros(asked.occurred_at))
    used = await usages[key].in_period(tx, key, bounds)
    standing = Standing(used, slot.rule.limit, bounds.window, slot.rule.plan_key)
    return RefundResult(refunded, standing, tuple(event.id for event in events))


def _key_of(operator_id: int, event: EventRow) -> UsageKey:
    return UsageKey(operator_id, event.tenant_id, event.primitive)


async def rule_slots(
    tx: Transaction, cache: TermsCache, keys: Sequence[UsageKey], versions: dict[int, int]
) -> dict[UsageKey, RuleSlot]:
    """Each counter's rule at its operator's current terms version, loading
    the terms this process does not hold at that version."""
    slots: dict[UsageKey, RuleSlot] = {}
    missing: dict[int, set[str]] = {}
    for key in keys:
        version = versions.get(key.operator_id, 0)
        cache.saw_version(key.operator_id, version)
        slot = cache.slot_at(key, version)
        if slot is None:
            missing.setdefault(key.operator_id, set()).add(key.tenant_id)
        else:
            slots[key] = slot
    for operator_id, tenants in missing.items():
        found = await tx.load_terms(operator_id, sorted(tenants))
        loaded = {tenant: found.get(tenant, NO_TERMS) for tenant in tenants}
        version = versions.get(operator_id, 0)
        cache.hold(operator_id, version, loaded)
        for key in keys:
            if key.operator_id == operator_id and key not in slots:
                slots[key] = cache.slot_from(key, version, loaded[key.tenant_id])
    return slots


class PeriodUsage:
    """A counter's usage per period during one transaction: exact sums of the
    events, from the counter row or from the events themselves."""

    def __init__(self, row: CounterRow) -> None:
        self._used: dict[tuple[int, int], Quantity] = {(row.start, row.end): row.used}
        self._stored = (row.start, row.end)
        self.changed = False

    async def in_period(self, tx: Transaction, key: UsageKey, bounds: Bounds) -> Quantity:
        period = (bounds.start, bounds.end)
        if period not in self._used:
            self._used[period] = await tx.sum_events(key, *period)
        return self._used[period]

    def add(self, event: NewEvent) -> None:
        self._count(to_micros(event.call.at), event.call.quantity)
        self._stored = max(self._stored, (event.window_start, event.window_end))

    def take_back(self, event: EventRow) -> None:
        self._count(event.occurred_at, -event.quantity)

    def row(self) -> CounterRow:
        """The counter row to store: the latest period known exactly."""
        start, end = self._stored
        return CounterRow(start, end, self._used[self._stored])

    def _count(self, at: int, quantity: Quantity) -> None:
        for (start, end), used in self._used.items():
            if start <= at < end:
                self._used[start, end] = used + quantity
                self.changed = True


async def _replays(tx: Transaction, calls: Sequence[Call]) -> dict[tuple[int, str], EventRow]:
    wanted: dict[int, set[str]] = {}
    for call in calls:
        if call.writes and call.idempotency_key is not None:
            wanted.setdefault(call.key.operator_id, set()).add(call.idempotency_key)
    found: dict[tuple[int, str], EventRow] = {}
    for operator_id, idempotency_keys in wanted.items():
        rows = await tx.find_events(operator_id, sorted(idempotency_keys))
        found.update(((operator_id, idem), row) for idem, row in rows.items())
    return found


def _by_period(
    slot: RuleSlot, calls: Sequence[Call], indexes: list[int], answers: dict[int, Answer]
) -> list[tuple[Bounds, list[int]]]:
    """The calls of one counter grouped by period, in arrival order within
    each; a call whose instant has no period is refused alone."""
    groups: dict[tuple[int, int], tuple[Bounds, list[int]]] = {}
    for index in indexes:
        try:
            bounds = slot.bounds_at(calls[index].at)
        except (ValueError, OverflowError):
            answers[index] = InvalidArgument("occurred_at", "is outside the supported range")
            continue
        groups.setdefault((bounds.start, bounds.end), (bounds, []))[1].append(index)
    return list(groups.values())


def answer_of(verdict: Verdict) -> Answer:
    """A check's decision, a refusal, or (for a recorded call, until its id
    is known) the standing to answer it with."""
    if verdict.refusal is not None:
        return verdict.refusal
    return QuotaDecision(verdict.reason is None, verdict.reason, verdict.standing)
