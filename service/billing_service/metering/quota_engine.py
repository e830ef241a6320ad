"""The quota engine: validates metered calls and hands them to the metering
core (metering/), and serves usage reports."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from ..catalog.meters import Meters
from ..catalog.projects import Projects
from ..catalog.store import Store
from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import InvalidArgument
from ..domain.instants import to_micros
from ..domain.models import QuotaDecision, RefundResult, UsageRecorded, UsageReport
from ..domain.owners import Owner
from ..domain.policy import enforcement
from ..domain.quantities import PLACES, micro
from ..domain.usage_keys import UsageKey
from .batch import BatchResult
from .batcher import Batcher
from .calls import Call, Kind, Refund, request_digest

# Recorded usage may be stamped a little ahead of this server's clock (skew).
MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_DECIMAL = Decimal(v.MAX_QUANTITY)


def recorded_at(occurred_at: datetime | None, now: datetime) -> datetime:
    """When recorded usage happened: `occurred_at` checked, or now."""
    at = v.instant("occurred_at", occurred_at, now) if occurred_at else now
    if at > now + MAX_FUTURE_SKEW:
        raise InvalidArgument("occurred_at", "must not be more than 5 minutes in the future")
    return at


class QuotaEngine:
    def __init__(
        self,
        store: Store,
        batcher: Batcher,
        clock: Clock,
        projects: Projects | None = None,
        meters: Meters | None = None,
    ) -> None:
        self._store = store
        self._batcher = batcher
        self._clock = clock
        self._projects = projects
        self._meters = meters

    async def check(
        self, operator_id: int, owner: Owner, primitive: str, quantity: int, decimal: str = ""
    ) -> QuotaDecision:
        key = _usage_key(operator_id, owner, primitive)
        amount = await self._quantity(key, quantity, decimal, default_one=True)
        now = self._clock.now()
        return await self._batcher.check(Call(Kind.CHECK, key, amount, now, now))

    async def consume(
        self,
        operator_id: int,
        owner: Owner,
        primitive: str,
        quantity: int,
        idempotency_key: str,
        decimal: str = "",
        project_id: str = "",
    ) -> UsageRecorded:
        key = _usage_key(operator_id, owner, primitive)
        amount = await self._quantity(key, quantity, decimal, default_one=True)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        project = await self._project(operator_id, owner, project_id)
        now = self._clock.now()
        digest = request_digest(idem, "consume", key.tenant_id, key.primitive, amount, project)
        call = Call(Kind.CONSUME, key, amount, now, now, idem, project, digest=digest)
        return await self._batcher.write(call)

    async def record(
        self,
        operator_id: int,
        owner: Owner,
        primitive: str,
        quantity: int,
        idempotency_key: str,
        occurred_at: datetime | None,
        decimal: str = "",
        project_id: str = "",
    ) -> UsageRecorded:
        key = _usage_key(operator_id, owner, primitive)
        amount = await self._quantity(key, quantity, decimal, default_one=False)
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        now = self._clock.now()
        at = recorded_at(occurred_at, now)
        project = await self._project(operator_id, owner, project_id)
        given_at = None if occurred_at is None else to_micros(at)
        digest = request_digest(
            idem, "record", key.tenant_id, key.primitive, amount, project, given_at
        )
        call = Call(Kind.RECORD, key, amount, at, now, idem, project, digest=digest)
        return await self._batcher.write(call)

    async def _quantity(self, key: UsageKey, quantity: int, decimal: str, default_one: bool) -> int:
        """The call's quantity in micro-units: whole units, or a decimal of
        no more places than the primitive's meter takes."""
        if not decimal:
            return micro(v.quantity("quantity", quantity, default_one=default_one))
        if quantity:
            raise InvalidArgument("quantity_decimal", "give quantity or quantity_decimal, not both")
        scale = 0
        if self._meters is not None:
            scale = (await self._meters.meter_of(key.operator_id, key.primitive)).scale
        value = v.decimal(
            "quantity_decimal", decimal, places=scale, maximum=MAX_DECIMAL, positive=True
        )
        return int(value.scaleb(PLACES))

    async def _project(self, operator_id: int, owner: Owner, project_id: str) -> str | None:
        if not project_id:
            return None
        if self._projects is None:
            raise InvalidArgument("project_id", "projects are not served here")
        return await self._projects.of_owner(operator_id, owner, project_id)

    async def consume_all(
        self, operator_id: int, items: Sequence[tuple[Owner, str, int, str]]
    ) -> BatchResult:
        """ConsumeQuota for each (owner, primitive, quantity, idempotency key)
        of `items`, all of them or none (metering/batcher.py, write_all).
        The items are one request: each key is stored with the digest of
        them all, so that a retry of the request with other items is no
        replay of any."""
        now = self._clock.now()
        checked = [
            (
                _usage_key(operator_id, owner, primitive),
                micro(v.quantity("quantity", quantity, default_one=True)),
                v.idempotency_key("idempotency_key", idem),
            )
            for owner, primitive, quantity, idem in items
        ]
        digest = request_digest(
            next((idem for _, _, idem in checked if idem), None),
            "consume_all",
            [(key.tenant_id, key.primitive, amount) for key, amount, _ in checked],
        )
        calls = [
            Call(Kind.CONSUME, key, amount, now, now, idem, digest=digest)
            for key, amount, idem in checked
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
