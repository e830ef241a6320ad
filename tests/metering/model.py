"""A reference model of the README's metering semantics, written plainly:
a list of events and the usage of a period as their sum. The differential
tests hold every route of the metering core to it."""

from dataclasses import dataclass, field, replace
from datetime import datetime

from billing_service.domain.models import DenialReason, TenantTerms
from billing_service.domain.policy import Enforcement, enforcement
from billing_service.domain.quantities import UNIT


@dataclass
class Event:
    id: int
    tenant: str
    primitive: str
    quantity: int
    at: datetime
    idempotency_key: str | None
    used_after: int
    limit: int | None
    refunded: bool = False
    # The whole request the event was recorded for: its kind and every field
    # that changes what it records. A key replays only the same request.
    request: tuple[object, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What a user observes of one call."""

    outcome: str  # "allowed", a denial reason, "recorded", "replayed", or an error's reason
    used: int | None = None
    limit: int | None = None


@dataclass
class Model:
    terms: dict[str, TenantTerms] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    ids: dict[int, Event] = field(default_factory=dict)  # the service's event id -> event

    def used(self, tenant: str, primitive: str, at: datetime) -> int:
        window = self._rule(tenant, primitive).window(at)
        return sum(
            e.quantity
            for e in self.events
            if (e.tenant, e.primitive) == (tenant, primitive)
            and not e.refunded
            and window.start <= e.at < window.end
        )

    def check(self, tenant: str, primitive: str, quantity: int, now: datetime) -> Answer:
        rule = self._rule(tenant, primitive)
        used = self.used(tenant, primitive, now)
        reason = rule.denial
        if reason is None and rule.limit is not None and used + quantity > rule.limit:
            reason = DenialReason.QUOTA_EXCEEDED
        return Answer(str(reason) if reason else "allowed", used, rule.limit)

    def write(
        self,
        consume: bool,
        tenant: str,
        primitive: str,
        quantity: int,
        at: datetime,
        key: str | None,
        request: tuple[object, ...] = (),
    ) -> tuple[Answer, Event | None]:
        replayed = next((e for e in self.events if key and e.idempotency_key == key), None)
        if replayed is not None:
            if replayed.request != request:
                return Answer("IDEMPOTENCY_KEY_REUSED"), None
            return Answer("replayed", replayed.used_after, replayed.limit), None
        rule = self._rule(tenant, primitive)
        used = self.used(tenant, primitive, at)
        if consume:
            if rule.denial is DenialReason.SUBSCRIPTION_INACTIVE:
                return Answer("SUBSCRIPTION_INACTIVE"), None
            if rule.denial is DenialReason.PRIMITIVE_NOT_PERMITTED:
                return Answer("PRIMITIVE_NOT_PERMITTED"), None
            if rule.limit is not None and used + quantity > rule.limit:
                return Answer("RATE_LIMITED"), None
        event = Event(
            len(self.events),
            tenant,
            primitive,
            quantity,
            at,
            key,
            used + quantity,
            rule.limit,
            request=request,
        )
        self.events.append(event)
        return Answer("recorded", event.used_after, rule.limit), event

    def refund(self, event: Event | None, now: datetime) -> Answer:
        if event is None:
            return Answer("NOT_FOUND")
        refunded = not event.refunded
        event.refunded = True
        rule = self._rule(event.tenant, event.primitive)
        used = self.used(event.tenant, event.primitive, event.at)
        return Answer("refunded" if refunded else "already refunded", used, rule.limit)

    def _rule(self, tenant: str, primitive: str) -> Enforcement:
        rule = enforcement(self.terms.get(tenant, TenantTerms(None, None, None)), primitive)
        # The policy's limits are in micro-units; the model counts whole units.
        return replace(rule, limit=None if rule.limit is None else rule.limit // UNIT)
