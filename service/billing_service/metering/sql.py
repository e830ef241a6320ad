"""Statements both engines share, with numbered placeholders ({0}, {1}, ...)
that each engine fills with its own marks."""

from collections.abc import Sequence
from typing import Any

from ..catalog.rows import kit_from_row, plan_from_row, subscription_from_row
from ..domain.instants import to_micros
from ..domain.models import TenantTerms
from .calls import EventRow, NewEvent
from .decide import THRESHOLDS

TERMS = """
SELECT s.tenant_id AS s_tenant_id, s.plan_key AS s_plan_key, s.status AS s_status,
    s.stripe_customer_id AS s_stripe_customer_id,
    s.stripe_subscription_id AS s_stripe_subscription_id,
    s.current_period_end AS s_current_period_end, s.account_kit_id AS s_account_kit_id,
    s.billing_cycle_anchor AS s_billing_cycle_anchor,
    s.created_at AS s_created_at, s.updated_at AS s_updated_at,
    p.key AS p_key, p.name AS p_name, p.account_kit_id AS p_account_kit_id,
    p.stripe_price_id AS p_stripe_price_id, p.quotas AS p_quotas, p.period AS p_period,
    p.archived AS p_archived, p.created_at AS p_created_at, p.updated_at AS p_updated_at,
    p.prices AS p_prices, p.currency AS p_currency,
    k.id AS k_id, k.name AS k_name, k.primitives AS k_primitives,
    k.permissions AS k_permissions, k.created_at AS k_created_at, k.updated_at AS k_updated_at
FROM subscriptions s
JOIN plans p ON p.operator_id = s.operator_id AND p.key = s.plan_key
LEFT JOIN account_kits k ON k.operator_id = s.operator_id AND k.id = s.account_kit_id
"""

EVENT_COLUMNS = (
    "id, tenant_id, primitive, quantity, occurred_at, used_after, quota_limit,"
    " window_start, window_end, plan_key, idempotency_key, refunded_at, project_id,"
    " request_digest, call_event_id"
)
EVENTS = f"SELECT {EVENT_COLUMNS} FROM usage_events"
# The events of one request (call_event_id: its first event's id), in order.
CALL_EVENTS = f"{EVENTS} WHERE operator_id = {{0}} AND call_event_id = {{1}} ORDER BY id"
# What the conditional statement writes (a call without idempotency key, alone).
INSERT_EVENT_COLUMNS = (
    "operator_id, tenant_id, primitive, quantity, occurred_at, recorded_at, idempotency_key,"
    " used_after, quota_limit, window_start, window_end, plan_key, project_id, detail"
)
# What the batch path writes: the same, and the request's digest and first event.
INSERT_CALL_COLUMNS = f"{INSERT_EVENT_COLUMNS}, request_digest, call_event_id"
SUM_EVENTS = """
SELECT COALESCE(SUM(quantity), 0) FROM usage_events
WHERE operator_id = {0} AND tenant_id = {1} AND primitive = {2}
  AND occurred_at >= {3} AND occurred_at < {4} AND refunded_at IS NULL
"""
MARK_REFUNDED = (
    "UPDATE usage_events SET refunded_at = {2} "
    "WHERE operator_id = {0} AND id = {1} AND refunded_at IS NULL RETURNING id"
)
# A check's read: the operator's terms version and the usage of one counter
# ({0} operator, {1} tenant, {2} primitive) in [{3}, {4}): the counter's when
# it holds that period, else the events' sum, in one statement (one snapshot).
# The sum is a subquery of the ELSE branch, which both engines run only when
# reached.
USED_IN_PERIOD = """
SELECT o.terms_version,
       CASE WHEN c.window_start = {3} AND c.window_end = {4} THEN c.used
       ELSE (SELECT CAST(COALESCE(SUM(e.quantity), 0) AS BIGINT) FROM usage_events e
             WHERE e.operator_id = {0} AND e.tenant_id = {1} AND e.primitive = {2}
               AND e.occurred_at >= {3} AND e.occurred_at < {4} AND e.refunded_at IS NULL)
       END
FROM operators o
LEFT JOIN usage_counters c ON c.operator_id = o.id AND c.tenant_id = {1} AND c.primitive = {2}
WHERE o.id = {0}
"""


def numbered(sql: str, mark: str, count: int) -> str:
    """`sql` with {0}..{count-1} replaced by `mark` numbered from 1 ("?", "$")."""
    return sql.format(*(f"{mark}{i}" for i in range(1, count + 1)))


def event_row(row: Any) -> EventRow:
    return EventRow(
        id=row["id"],
        tenant_id=row["tenant_id"],
        primitive=row["primitive"],
        quantity=row["quantity"],
        occurred_at=row["occurred_at"],
        used_after=row["used_after"],
        quota_limit=row["quota_limit"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        plan_key=row["plan_key"],
        refunded=row["refunded_at"] is not None,
        project_id=row["project_id"],
        digest=row["request_digest"],
        call_event_id=row["call_event_id"],
    )


def terms_from_row(row: Any) -> TenantTerms:
    def table(prefix: str) -> Any:
        return _Columns({name[2:]: row[name] for name in row.keys() if name.startswith(prefix)})  # noqa: SIM118

    kit = table("k_")
    return TenantTerms(
        subscription=subscription_from_row(table("s_")),
        plan=plan_from_row(table("p_")),
        kit=kit_from_row(kit) if kit.id is not None else None,
    )


class _Columns:
    """A row's columns of one table, as attributes (what the row converters read)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def event_values(event: NewEvent, call_event_id: int | None = None) -> tuple[Any, ...]:
    """An event's INSERT values, in INSERT_CALL_COLUMNS' order (the first
    fourteen: INSERT_EVENT_COLUMNS')."""
    call = event.call
    return (
        call.key.operator_id,
        call.key.tenant_id,
        call.key.primitive,
        call.quantity,
        to_micros(call.at),
        to_micros(call.now),
        call.idempotency_key,
        event.used_after,
        event.quota_limit,
        event.window_start,
        event.window_end,
        event.plan_key,
        call.project_id,
        call.detail,
        call.digest,
        call_event_id,
    )


def writes_at_once(used: str, quantity: str, limit: str, enforce: str, marks: Sequence[str]) -> str:
    """decide.writes_at_once as an SQL condition over the given expressions (a
    column and parameters; `marks`: decide.threshold_marks of the limit, one
    per threshold): the one place it is written in SQL."""
    assert len(marks) == len(THRESHOLDS)
    crossed = " OR ".join(f"({used} < {mark} AND {mark} <= {used} + {quantity})" for mark in marks)
    return (
        f"(NOT {enforce} OR {limit} IS NULL OR {used} + {quantity} <= {limit})"
        f" AND ({limit} IS NULL OR {limit} <= 0 OR NOT ({crossed}))"
    )
