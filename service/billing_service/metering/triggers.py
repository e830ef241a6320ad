"""The triggers on `usage_events`: what the database does, in the same
transaction, after every write of the metering core. Nothing in metering/
calls them; billing's daily aggregates, the end users' usage alerts and
Stripe's meter stamps and cancels hang on them.

These are the CURRENT definitions. The migrations that made them (0004, 0006,
0008, 0011) stay as history; tests/metering/test_triggers.py checks that a
migrated database's triggers are these, on both engines. A change here is a
new migration that replaces the trigger, and a change of the test's answer.
"""

from dataclasses import dataclass, field

from .decide import THRESHOLDS

REFUNDED = "OLD.refunded_at IS NULL AND NEW.refunded_at IS NOT NULL"


@dataclass(frozen=True)
class Trigger:
    """One trigger: its name, when it fires, and its statements per dialect
    (on PostgreSQL they are the body of the function it executes)."""

    name: str
    fires: str
    when: str | None
    statements: dict[str, str]
    function: str | None = None  # PostgreSQL's trigger function
    doc: str = field(default="", compare=False)


def _day_of_events(alias: str, day: str) -> str:
    return (
        f"{alias}.operator_id = OLD.operator_id AND {alias}.tenant_id = OLD.tenant_id"
        f" AND {alias}.primitive = OLD.primitive"
        f" AND COALESCE({alias}.project_id, '') = COALESCE(OLD.project_id, '')"
        f" AND {alias}.occurred_at >= {day} * 86400000000"
        f" AND {alias}.occurred_at < ({day} + 1) * 86400000000 AND {alias}.refunded_at IS NULL"
    )


DAILY_ADD = """
INSERT INTO usage_daily (operator_id, tenant_id, project_id, primitive, day,
                         total, peak, last_value, last_at, last_id, events)
VALUES (NEW.operator_id, NEW.tenant_id, COALESCE(NEW.project_id, ''), NEW.primitive,
        NEW.occurred_at / 86400000000, NEW.quantity, NEW.quantity, NEW.quantity,
        NEW.occurred_at, NEW.id, 1)
ON CONFLICT (operator_id, tenant_id, project_id, primitive, day) DO UPDATE SET
    total = usage_daily.total + excluded.total,
    peak = CASE WHEN excluded.peak > usage_daily.peak THEN excluded.peak
                ELSE usage_daily.peak END,
    last_value = CASE WHEN (excluded.last_at, excluded.last_id)
                           > (usage_daily.last_at, usage_daily.last_id)
                      THEN excluded.last_value ELSE usage_daily.last_value END,
    last_id = CASE WHEN (excluded.last_at, excluded.last_id)
                        > (usage_daily.last_at, usage_daily.last_id)
                   THEN excluded.last_id ELSE usage_daily.last_id END,
    last_at = CASE WHEN excluded.last_at > usage_daily.last_at THEN excluded.last_at
                   ELSE usage_daily.last_at END,
    events = usage_daily.events + 1;
"""

DAILY_TAKE_BACK = f"""
UPDATE usage_daily SET
    total = total - OLD.quantity,
    events = events - 1,
    peak = COALESCE((SELECT MAX(r.quantity) FROM usage_events r WHERE {_day_of_events("r", "usage_daily.day")}), 0),
    (last_value, last_at, last_id) = (
        SELECT COALESCE(MAX(x.quantity), 0), COALESCE(MAX(x.occurred_at), -1),
               COALESCE(MAX(x.id), -1)
        FROM (SELECT r.quantity, r.occurred_at, r.id FROM usage_events r WHERE {_day_of_events("r", "usage_daily.day")}
              ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1) x)
WHERE operator_id = OLD.operator_id AND tenant_id = OLD.tenant_id AND project_id = COALESCE(OLD.project_id, '') AND primitive = OLD.primitive AND day = OLD.occurred_at / 86400000000;
"""  # noqa: E501


def _mark(percent: str) -> str:
    """ceil(limit * percent / 100) in integers, as decide.threshold_marks."""
    limit = "NEW.quota_limit"
    return f"({limit} / 100) * {percent} + (({limit} % 100) * {percent} + 99) / 100"


def _thresholds() -> str:
    first, *rest = THRESHOLDS
    return " UNION ALL ".join([f"SELECT {first} AS p", *(f"SELECT {p}" for p in rest)])


ALERTS_RAISE = f"""
INSERT INTO usage_alerts (operator_id, tenant_id, primitive, window_start, window_end,
                          threshold, used, quota_limit, created_at)
SELECT NEW.operator_id, NEW.tenant_id, NEW.primitive, NEW.window_start, NEW.window_end,
       t.p, NEW.used_after, NEW.quota_limit, NEW.recorded_at
FROM ({_thresholds()}) AS t
WHERE NEW.used_after - NEW.quantity < {_mark("t.p")} AND {_mark("t.p")} <= NEW.used_after
ON CONFLICT DO NOTHING;
"""


def _outbox_cancel(sent: str, true: str) -> str:
    """Cancel what Stripe took: an event the outbox reported, or one `sent`
    (past the cursor) of an owner with a Stripe customer."""
    return f"""
INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT r.operator_id, r.event_id, 'cancel', r.event_name, NEW.refunded_at, 0
FROM stripe_meter_outbox r
WHERE r.event_id = OLD.id AND r.action = 'report';

INSERT INTO stripe_meter_outbox (operator_id, event_id, action, event_name, due_at, attempts)
SELECT NEW.operator_id, NEW.id, 'cancel', m.stripe_event_name, NEW.refunded_at, 0
FROM meters m
WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
  AND m.stripe_event_name IS NOT NULL
  AND {sent}
  AND {true}
  AND EXISTS (SELECT 1 FROM stripe_customers c
              WHERE c.operator_id = NEW.operator_id AND c.tenant_id = NEW.tenant_id)
  AND NOT EXISTS (SELECT 1 FROM stripe_meter_outbox r WHERE r.event_id = OLD.id AND r.action = 'report');
"""  # noqa: E501


METER_STAMP = """
BEGIN
  IF EXISTS (SELECT 1 FROM meters m
             WHERE m.operator_id = NEW.operator_id AND m.key = NEW.primitive
               AND m.stripe_event_name IS NOT NULL) THEN
    NEW.stripe_xact := pg_current_xact_id()::text::bigint;
  END IF;
  RETURN NEW;
END
"""


def _both(statements: str) -> dict[str, str]:
    return {"sqlite": statements, "postgres": statements}


TRIGGERS = (
    Trigger(
        "usage_daily_on_insert",
        "AFTER INSERT",
        None,
        _both(DAILY_ADD),
        "usage_daily_add",
        doc="Billing: adds the event to its day's aggregate (total, peak, last value, count).",
    ),
    Trigger(
        "usage_daily_on_refund",
        "AFTER UPDATE OF refunded_at",
        REFUNDED,
        _both(DAILY_TAKE_BACK),
        "usage_daily_take_back",
        doc="Billing: takes a refunded event back out of its day; peak and last value re-read.",
    ),
    Trigger(
        "usage_alerts_on_insert",
        "AFTER INSERT",
        "NEW.quota_limit > 0 AND NEW.quantity > 0",
        _both(ALERTS_RAISE),
        "usage_alerts_raise",
        doc="End users: an alert per threshold of decide.THRESHOLDS the event crossed, "
        "one per threshold and window.",
    ),
    Trigger(
        "stripe_outbox_on_refund",
        "AFTER UPDATE OF refunded_at",
        REFUNDED,
        {
            "sqlite": _outbox_cancel(
                "OLD.id > (SELECT read_after FROM stripe_meter_cursor WHERE id = 1)", "1"
            ),
            "postgres": _outbox_cancel("OLD.stripe_xact IS NOT NULL", "TRUE"),
        },
        "stripe_outbox_cancel",
        doc="Stripe: queues the cancel of a refunded event's meter event.",
    ),
    Trigger(
        "stripe_meter_stamp",
        "BEFORE INSERT",
        None,
        {"postgres": METER_STAMP},
        "stripe_meter_stamp",
        doc="Stripe, PostgreSQL only: stamps an event of a sent meter with its transaction "
        "id, so that the sender's cursor passes no transaction still in flight.",
    ),
)


def triggers_of(dialect: str) -> dict[str, Trigger]:
    """The triggers a database of `dialect` has, by name."""
    return {t.name: t for t in TRIGGERS if dialect in t.statements}
