"""THE metering rule, and the only place it is written. Pure: no I/O, no
clock (every instant comes in the calls).

`decide` answers the calls of one counter in one period, in arrival order,
as if each had had the counter to itself: what every route of the core
(batcher.py) and the reference model of the tests agree on.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ..domain.errors import (
    DomainError,
    IdempotencyKeyReused,
    PrimitiveNotPermitted,
    QuotaExceeded,
    SubscriptionInactive,
)
from ..domain.instants import from_micros
from ..domain.models import DenialReason, Standing, UsageRecorded, Window
from ..domain.policy import Enforcement
from .calls import Call, EventRow, Kind, NewEvent, Quantity

# Percentages of a limit whose crossing is reported once per period.
THRESHOLDS = (80, 100)


def admits(limit: Quantity | None, used: Quantity, quantity: Quantity) -> bool:
    """Whether `quantity` more units fit under `limit` (None: unlimited)."""
    return limit is None or used + quantity <= limit


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's answer to one call. A check has `reason` (None: allowed);
    a write has either `refusal` or the `event` to store."""

    standing: Standing
    reason: DenialReason | None = None
    refusal: DomainError | None = None
    event: NewEvent | None = None


@dataclass(frozen=True, slots=True)
class Bounds:
    """The period a group of calls falls in, with its bounds in micros."""

    window: Window
    start: int
    end: int


def decide(
    rule: Enforcement, period: Bounds, used: Quantity, calls: Sequence[Call]
) -> tuple[list[Verdict], Quantity]:
    """Answer `calls` (one counter, all in `period`, in arrival order) against
    `used`, the counter's usage in that period; return the verdicts and the
    usage after them. RecordUsage records whatever the limit and the
    subscription say (it reports work already done); ConsumeQuota only within
    both; a check writes nothing."""
    verdicts: list[Verdict] = []
    for call in calls:
        standing = Standing(used, rule.limit, period.window, rule.plan_key)
        if call.kind is Kind.CHECK:
            verdicts.append(Verdict(standing, reason=check_reason(rule, used, call.quantity)))
            continue
        if call.kind is Kind.CONSUME:
            refusal = _refusal(rule, call, used, period)
            if refusal is not None:
                verdicts.append(Verdict(standing, refusal=refusal))
                continue
        used += call.quantity
        event = NewEvent(call, used, rule.limit, period.start, period.end, rule.plan_key)
        verdicts.append(
            Verdict(
                Standing(used, rule.limit, period.window, rule.plan_key),
                event=event,
            )
        )
    return verdicts, used


def replay(call: Call, row: EventRow) -> UsageRecorded | DomainError:
    """The answer to a call whose idempotency key is stored (`row`): the
    first answer again for the same request, else IDEMPOTENCY_KEY_REUSED."""
    if not same_request(call, row):
        return IdempotencyKeyReused(call.idempotency_key or "")
    window = Window(from_micros(row.window_start), from_micros(row.window_end))
    standing = Standing(row.used_after, row.quota_limit, window, row.plan_key)
    return UsageRecorded(row.id, standing, replayed=True)


def same_request(call: Call, row: EventRow) -> bool:
    """Whether `call` is the request stored as `row`: the same digest of the
    whole request (calls.request_digest). An event stored before digests
    were is compared by what was compared then."""
    if row.digest is not None:
        return row.digest == call.digest
    stored = (row.tenant_id, row.primitive, row.quantity, row.project_id)
    return stored == (call.key.tenant_id, call.key.primitive, call.quantity, call.project_id)


def writes_at_once(
    limit: Quantity | None, used: Quantity, quantity: Quantity, enforce: bool
) -> bool:
    """Whether one conditional statement may write a call without the batch
    path (router.py, CONDITIONAL): it fits under the limit where the limit is
    `enforce`d (ConsumeQuota), and crosses no threshold (`crossed`): those
    calls stay with the batch path. The alerts themselves come from a trigger,
    on every route (metering/triggers.py). sql.py's CONDITIONAL_WRITE says the
    same in SQL."""
    if enforce and not admits(limit, used, quantity):
        return False
    if limit is None or limit <= 0:
        return True
    return not crossed(limit, used, used + quantity)


def threshold_marks(limit: Quantity | None) -> tuple[Quantity | None, ...]:
    """For each threshold, the least usage at which it is reached (p% of the
    limit, rounded up): a call crosses it when used < mark <= used + quantity.
    Computed here, in Python's unbounded integers, so that the SQL condition
    never multiplies a limit (up to 10^18 micro-units) by a percentage."""
    return tuple(None if limit is None else -(-p * limit // 100) for p in THRESHOLDS)


def check_reason(rule: Enforcement, used: Quantity, quantity: Quantity) -> DenialReason | None:
    """Why a check of `quantity` more units is denied; None: allowed."""
    if rule.denial is not None:
        return rule.denial
    if not admits(rule.limit, used, quantity):
        return DenialReason.QUOTA_EXCEEDED
    return None


def crossed(limit: Quantity | None, before: Quantity, after: Quantity) -> tuple[int, ...]:
    """The thresholds (percentages of `limit`) that usage going from `before`
    to `after` crosses: exactly one call per threshold and period can."""
    if limit is None or limit <= 0:
        return ()
    return tuple(p for p in THRESHOLDS if before * 100 < p * limit <= after * 100)


def _refusal(rule: Enforcement, call: Call, used: Quantity, period: Bounds) -> DomainError | None:
    if rule.denial is DenialReason.SUBSCRIPTION_INACTIVE:
        return SubscriptionInactive(call.key.tenant_id, str(rule.status))
    if rule.denial is DenialReason.PRIMITIVE_NOT_PERMITTED:
        return PrimitiveNotPermitted(call.key.primitive, rule.account_kit_id or "")
    if rule.limit is not None and not admits(rule.limit, used, call.quantity):
        return QuotaExceeded(call.key.primitive, used, rule.limit, period.window.end)
    return None
