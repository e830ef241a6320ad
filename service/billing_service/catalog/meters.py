"""The operator's meters, over the built-in ones."""

import re

from ..billing.ledger import LedgerStore
from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import FailedPrecondition, InvalidArgument, NotFound
from ..domain.quantities import PLACES
from .meter_model import BUILT_IN, Aggregation, Meter, undeclared

UNIT_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,32}")
# Stripe's meter event names: up to 100 characters; ours keep to a safe set.
STRIPE_EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
# A Stripe meter sums, counts or takes the last value of the events it is
# sent: a max meter's every reading would be summed (or the last one kept),
# and Stripe would bill what the summaries do not price.
STRIPE_LINKABLE = (Aggregation.SUM, Aggregation.LAST)


class Meters:
    def __init__(self, ledger: LedgerStore, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    async def upsert(
        self,
        operator_id: int,
        key: str,
        display_name: str,
        unit: str,
        aggregation: Aggregation | None,
        scale: int,
        stripe_event_name: str = "",
    ) -> tuple[Meter, bool]:
        if not UNIT_RE.fullmatch(unit) or unit.strip() != unit:
            raise InvalidArgument("unit", "must be 1 to 32 characters, without spaces at the ends")
        if not 0 <= scale <= PLACES:
            raise InvalidArgument("scale", f"must be between 0 and {PLACES}, got {scale}")
        aggregation = aggregation or Aggregation.SUM
        if stripe_event_name and aggregation not in STRIPE_LINKABLE:
            linkable = " or ".join(a.value for a in STRIPE_LINKABLE)
            raise FailedPrecondition(
                f"a {aggregation.value} meter cannot be sent to a Stripe meter, which sums,"
                f" counts or keeps the last value: only {linkable} meters can be linked",
                {"field": "stripe_event_name", "aggregation": aggregation.value},
            )
        meter = Meter(
            v.primitive("key", key),
            v.name("display_name", display_name),
            unit,
            aggregation,
            scale,
            stripe_event_name=_stripe_event_name(stripe_event_name) or None,
        )
        return await self._ledger.upsert_meter(operator_id, meter, self._clock.now())

    async def get(self, operator_id: int, key: str) -> Meter:
        key = v.primitive("key", key)
        meter = (await self.all(operator_id)).get(key)
        if meter is None:
            raise NotFound("meter", key)
        return meter

    async def all(self, operator_id: int) -> dict[str, Meter]:
        """Declared meters and the built-in ones not redeclared, by key."""
        declared = {meter.key: meter for meter in await self._ledger.declared_meters(operator_id)}
        return dict(sorted((BUILT_IN | declared).items()))

    async def meter_of(self, operator_id: int, key: str) -> Meter:
        """The meter a primitive is measured by, declared or not."""
        return (await self.all(operator_id)).get(key) or undeclared(key)


def _stripe_event_name(name: str) -> str:
    if name and not STRIPE_EVENT_NAME_RE.fullmatch(name):
        raise InvalidArgument(
            "stripe_event_name", "must be 1 to 100 letters, digits, '_', '.', ':' or '-'"
        )
    return name
