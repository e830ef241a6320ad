"""Per-process copies of tenants' terms and of the rule each counter is
enforced by. Every entry is valid for the operator's terms version it was
loaded at (operators.terms_version, bumped with every change of plans, kits
or subscriptions); a caller compares it with the version it read from the
database. Bounded: the oldest entries go first. A batch keeps the slots it
uses, so that an eviction never fails a call."""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ..domain.instants import to_micros
from ..domain.models import TenantTerms
from ..domain.policy import Enforcement
from ..domain.usage_keys import UsageKey
from .decide import Bounds

K = TypeVar("K")
V = TypeVar("V")

NO_TERMS = TenantTerms(None, None, None)
MAX_TENANTS = 100_000


class RuleSlot:
    """A counter's rule at one terms version, and the period it gave for the
    last instant asked: calls of one counter nearly always fall in the
    period of the call before."""

    __slots__ = ("_bounds", "rule", "version")

    def __init__(self, rule: Enforcement, version: int) -> None:
        self.rule = rule
        self.version = version
        self._bounds: Bounds | None = None

    def bounds_at(self, at: datetime) -> Bounds:
        """The period in force at `at` (ValueError or OverflowError at the ends
        of the calendar)."""
        bounds = self._bounds
        if bounds is None or not bounds.window.start <= at < bounds.window.end:
            window = self.rule.window(at)
            bounds = self._bounds = Bounds(window, to_micros(window.start), to_micros(window.end))
        return bounds


class TermsCache:
    def __init__(
        self, rule_for: Callable[[TenantTerms, str], Enforcement], max_tenants: int = MAX_TENANTS
    ) -> None:
        self._rule_for = rule_for
        self._max_tenants = max_tenants
        self._terms: dict[tuple[int, str], tuple[int, TenantTerms]] = {}
        self._slots: dict[UsageKey, RuleSlot] = {}
        self._versions: dict[int, int] = {}  # the newest version seen per operator

    def __len__(self) -> int:
        return len(self._terms)

    def saw_version(self, operator_id: int, version: int) -> None:
        """The database said `version` for the operator's terms."""
        self._versions[operator_id] = version

    def current_slot(self, key: UsageKey) -> RuleSlot | None:
        """The counter's slot at the newest version seen, if held."""
        slot = self._slots.get(key)
        if slot is None or slot.version != self._versions.get(key.operator_id):
            return None
        return slot

    def slot_at(self, key: UsageKey, version: int) -> RuleSlot | None:
        """The counter's slot at `version`, from held terms; None: load them."""
        slot = self._slots.get(key)
        if slot is not None and slot.version == version:
            return slot
        held = self._terms.get((key.operator_id, key.tenant_id))
        if held is None or held[0] != version:
            return None
        slot = RuleSlot(self._rule_for(held[1], key.primitive), version)
        _put(self._slots, key, slot, 4 * self._max_tenants)
        return slot

    def hold(self, operator_id: int, version: int, terms: dict[str, TenantTerms]) -> None:
        """Keep terms loaded at `version` (tenants without any: NO_TERMS)."""
        for tenant_id, tenant_terms in terms.items():
            _put(self._terms, (operator_id, tenant_id), (version, tenant_terms), self._max_tenants)

    def slot_from(self, key: UsageKey, version: int, terms: TenantTerms) -> RuleSlot:
        """A slot for terms just loaded, whether or not they are still held."""
        return self.slot_at(key, version) or RuleSlot(self._rule_for(terms, key.primitive), version)


def _put(table: dict[K, V], key: K, value: V, limit: int) -> None:
    """Set `key`, first dropping the oldest entry when `table` is full."""
    if len(table) >= limit and key not in table:
        del table[next(iter(table))]
    table[key] = value
