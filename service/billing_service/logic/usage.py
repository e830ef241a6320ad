"""The quota engine: validates metered calls, hands them to the batched hot
path with the metering policy (domain/policy.py), and serves refunds and
usage reports."""

import asyncio
from datetime import datetime, timedelta

from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import InvalidArgument
from ..domain.models import QuotaDecision, RefundResult, UsageRecorded, UsageReport
from ..domain.policy import enforcement
from ..storage.hot_path import OpKind, UsageBatcher, UsageOp
from ..storage.rows import UsageKey
from ..storage.store import Store

# Recorded usage may be stamped a little ahead of this server's clock (skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)


class QuotaEngine:
    def __init__(self, store: Store, batcher: UsageBatcher, clock: Clock) -> None:
        self._store = store
        self._batcher = batcher
        self._clock = clock

    async def check(
        self, operator_id: int, tenant_id: str, primitive: str, quantity: int
    ) -> QuotaDecision:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        now = self._clock.now()
        return await self._batcher.check(key, quantity, now, now)

    async def consume(
        self,
        operator_id: int,
        tenant_id: str,
        primitive: str,
        quantity: int,
        idempotency_key: str,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=True)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        return await self._submit_usage(OpKind.CONSUME, key, quantity, now, now, idem)

    async def record(
        self,
        operator_id: int,
        tenant_id: str,
        primitive: str,
        quantity: int,
        idempotency_key: str,
        occurred_at: datetime | None,
    ) -> UsageRecorded:
        key = _usage_key(operator_id, tenant_id, primitive)
        quantity = v.quantity("quantity", quantity, default_one=False)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        at = occurred_at or now
        if at > now + MAX_FUTURE_SKEW:
            raise InvalidArgument("occurred_at", "must not be more than 5 minutes in the future")
        return await self._submit_usage(OpKind.RECORD, key, quantity, at, now, idem)

    async def refund(self, operator_id: int, usage_event_id: str) -> RefundResult:
        if not usage_event_id:
            raise InvalidArgument("usage_event_id", "is required")
        if not usage_event_id.isdigit() or len(usage_event_id) > 18:
            raise InvalidArgument("usage_event_id", "is not an id returned by this service")
        event = await self._store.refund_usage(operator_id, int(usage_event_id), self._clock.now())
        # The standing in the event's period, as the hot path counts it.
        decision = await self._batcher.check(event.key, 1, event.occurred_at, self._clock.now())
        return RefundResult(event.refunded, decision.standing)

    async def usage(self, operator_id: int, tenant_id: str, as_of: datetime | None) -> UsageReport:
        tenant_id = v.tenant_id("tenant_id", tenant_id)
        terms = await self._store.get_terms(operator_id, tenant_id)
        rule = enforcement(terms, "")
        window = rule.window(as_of or self._clock.now())
        used = await self._store.usage_by_primitive(operator_id, tenant_id, window)
        quotas = terms.plan.quotas if terms.plan is not None else {}
        usage = {primitive: used.get(primitive, 0) for primitive in quotas} | used
        return UsageReport(terms, rule.period, window, dict(sorted(usage.items())))

    async def _submit_usage(
        self,
        kind: OpKind,
        key: UsageKey,
        quantity: int,
        at: datetime,
        now: datetime,
        idempotency_key: str | None,
    ) -> UsageRecorded:
        result = await self._batcher.submit(
            UsageOp(kind, key, quantity, at, now, idempotency_key, _future())
        )
        assert isinstance(result, UsageRecorded)
        return result


def _future() -> "asyncio.Future[QuotaDecision | UsageRecorded]":
    return asyncio.get_running_loop().create_future()


def _usage_key(operator_id: int, tenant_id: str, primitive: str) -> UsageKey:
    return UsageKey(
        operator_id, v.tenant_id("tenant_id", tenant_id), v.primitive("primitive", primitive)
    )
