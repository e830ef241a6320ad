"""The READ and CONDITIONAL routes' statement and decision (router.py): a
check decided from one read of its counter, a write made by one conditional
statement. For a caller that holds the connection; the batcher says when.
Both work under terms this process holds at the database's version, and
answer None where they cannot decide as the batch path would."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ..domain.models import QuotaDecision, Standing, UsageRecorded
from .backend import MeteringBackend
from .batch import answer_of
from .calls import Call, Kind, NewEvent, Quantity
from .decide import Bounds, decide
from .terms_cache import RuleSlot, TermsCache


@dataclass(frozen=True, slots=True)
class Read:
    slot: RuleSlot
    bounds: Bounds
    used: Quantity | None  # None: the terms changed since the slot was made


class ShortWays:
    def __init__(self, backend: MeteringBackend, cache: TermsCache) -> None:
        self._backend = backend
        self._cache = cache

    async def read(self, call: Call) -> Read | None:
        """One read of `call`'s counter in its period; None when this process
        holds no terms for it."""
        slot = self._cache.current_slot(call.key)
        if slot is None:
            return None
        bounds = slot.bounds_at(call.at)
        read = await self._backend.read_usage(call.key, bounds.start, bounds.end)
        return Read(slot, bounds, self._used_at(call, slot, read))

    def read_now(self, call: Call) -> Read | None:
        """read without a coroutine, where the backend never suspends."""
        slot = self._cache.current_slot(call.key)
        if slot is None:
            return None
        bounds = slot.bounds_at(call.at)
        read = self._backend.read_usage_now(call.key, bounds.start, bounds.end)
        return Read(slot, bounds, self._used_at(call, slot, read))

    def checks(self, calls: Sequence[Call], read: Read | None) -> list[QuotaDecision] | None:
        """Checks of the read's counter decided from it, if all fall in its period."""
        if read is None or read.used is None:
            return None
        if any(read.slot.bounds_at(call.at) != read.bounds for call in calls):
            return None
        verdicts, _ = decide(read.slot.rule, read.bounds, read.used, calls)
        decisions = [answer_of(verdict) for verdict in verdicts]
        assert all(isinstance(d, QuotaDecision) for d in decisions)  # checks are never refused
        return cast(list[QuotaDecision], decisions)

    def conditional(self, call: Call) -> tuple[RuleSlot, NewEvent] | None:
        """What the conditional statement writes for `call`: its slot and
        event; None where only the batch path can decide (no terms held, a
        refusal of the subscription or kit, an instant without a period)."""
        slot = self._cache.current_slot(call.key)
        if slot is None or (call.kind is Kind.CONSUME and slot.rule.denial is not None):
            return None
        try:
            bounds = slot.bounds_at(call.at)
        except (ValueError, OverflowError):
            return None
        rule = slot.rule
        return slot, NewEvent(call, 0, rule.limit, bounds.start, bounds.end, rule.plan_key)

    @staticmethod
    def recorded(slot: RuleSlot, call: Call, event_id: int, used: Quantity) -> UsageRecorded:
        """The answer to a call the conditional statement wrote."""
        rule = slot.rule
        window = slot.bounds_at(call.at).window
        return UsageRecorded(event_id, Standing(used, rule.limit, window, rule.plan_key), False)

    def _used_at(
        self, call: Call, slot: RuleSlot, read: tuple[int, Quantity] | None
    ) -> Quantity | None:
        """The usage read, if read at the slot's terms version."""
        if read is None or read[0] != slot.version:
            if read is not None:
                self._cache.saw_version(call.key.operator_id, read[0])
            return None
        return read[1]
