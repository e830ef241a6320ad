"""The quota engine: validates metered calls and hands them to the metering
core (metering/), and serves usage reports."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import InvalidArgument
from ..domain.models import QuotaDecision, RefundResult, UsageRecorded, UsageReport
from ..domain.owners import Owner
from ..domain.policy import enforcement
from ..metering.batch import BatchResult
from ..metering.batcher import Batcher
from ..metering.calls import Call, Kind, Refund
from ..storage.rows import UsageKey
from ..storage.store import Store

# Recorded usage may be stamped a little ahead of this server's clock (skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)


class QuotaEngine:
    def __init__(self, store: Store, batcher: Batcher, clock: Clock) -> None:
        self._store = store
        self._batcher = batcher
        self._clock = clock

    async def check(
        self, operator_id: int, owner: Owner, primitive: str, quantity: int
    ) -> QuotaDecision:
        key = _usage_key(operator_id, owner, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        now = self._clock.now()
        return await self._batcher.check(Call(Kind.CHECK, key, quantity, now, now))

    async def consume(
        self,
        operator_id: int,
        owner: Owner,
        primitive: str,
        quantity: int,
        idempotency_key: str,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, owner, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        return await self._batcher.write(Call(Kind.CONSUME, key, quantity, now, now, idem))

    async def record(
        self,
        operator_id: int,
        owner: Owner,
        primitive: str,
        quantity: int,
        idempotency_key: str,
        occurred_at: datetime | None,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, owner, primitive)
        quantity = v.quantity("quantity", quantity, default_one=False)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        at = v.instant("occurred_at", occurred_at, now) if occurred_at else now
        if at > now + MAX_FUTURE_SKEW:
            raise InvalidArgument("occurred_at", "must not be more than 5 minutes in the future")
        return await self._batcher.write(Call(Kind.RECORD, key, quantity, at, now, idem))

    async def consume_all(
        self, operator_id: int, items: Sequence[tuple[Owner, str, int, str]]
    ) -> BatchResult:
        """ConsumeQuota for each (owner, primitive, quantity, idempotency key)
        of `items`, all of them or none (metering/batcher.py, write_all)."""
        now = self._clock.now()
        calls = [
            Call(
                Kind.CONSUME,
                _usage_key(operator_id, owner, primitive),
                v.quantity("quantity", quantity, default_one=True),
                now,
                now,
                v.idempotency_key("idempotency_key", idem),
            )
            for owner, primitive, quantity, idem in items
        ]
        return await self._batcher.write_all(calls)

    async def refund(self, operator_id: int, usage_event_id: str) -> RefundResult:
        event_id = v.event_id("usage_event_id", usage_event_id)
        return await self._batcher.refund(Refund(operator_id, event_id, self._clock.now()))

    async def usage(self, operator_id: int, owner: Owner, as_of: datetime | None) -> UsageReport:
        tenant_id = owner.key
        terms = await self._store.get_terms(operator_id, tenant_id)
        rule = enforcement(terms, "")
        now = self._clock.now()
        window = rule.window(v.instant("as_of", as_of, now) if as_of else now)
        used = await self._store.usage_by_primitive(operator_id, tenant_id, window)
        quotas = terms.plan.quotas if terms.plan is not None else {}
        usage = {primitive: used.get(primitive, 0) for primitive in quotas} | used
        return UsageReport(terms, rule.period, window, dict(sorted(usage.items())))


def _usage_key(operator_id: int, owner: Owner, primitive: str) -> UsageKey:
    return UsageKey(operator_id, owner.key, v.primitive("primitive", primitive))
