"""The rule, unit by unit (decide.py)."""

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from billing_service.domain.errors import IdempotencyKeyReused
from billing_service.domain.instants import from_micros
from billing_service.domain.models import (
    DenialReason,
    Period,
    Standing,
    SubscriptionStatus,
    UsageRecorded,
    Window,
)
from billing_service.domain.policy import UNSUBSCRIBED, Enforcement
from billing_service.domain.usage_keys import UsageKey
from billing_service.metering.calls import Call, EventRow, Kind
from billing_service.metering.decide import Bounds, admits, crossed, decide, replay

NOW = datetime(2026, 6, 15, tzinfo=UTC)
WINDOW = Window(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
BOUNDS = Bounds(WINDOW, 1, 2)
KEY = UsageKey(1, "t", "seo")


def rule(limit: int | None, denial: DenialReason | None = None) -> Enforcement:
    status = SubscriptionStatus.CANCELED if denial else SubscriptionStatus.ACTIVE
    return Enforcement(denial, limit, Period.MONTH, None, "pro", status, "kit")


def call(kind: Kind, quantity: int = 1) -> Call:
    return Call(kind, KEY, quantity, NOW, NOW)


@pytest.mark.parametrize(
    ("limit", "used", "quantity", "fits"),
    [
        (None, 10**12, 5, True),
        (10, 9, 1, True),
        (10, 10, 1, False),
        (10, 5, 6, False),
        (0, 0, 1, False),
    ],
)
def test_admits_up_to_the_limit_exactly(
    limit: int | None, used: int, quantity: int, fits: bool
) -> None:
    assert admits(limit, used, quantity) is fits


def test_consumes_are_admitted_in_order_until_the_limit() -> None:
    verdicts, used = decide(rule(3), BOUNDS, 1, [call(Kind.CONSUME)] * 3)
    assert [v.event is not None for v in verdicts] == [True, True, False]
    assert [v.standing.used for v in verdicts] == [2, 3, 3]
    assert verdicts[2].refusal is not None and verdicts[2].refusal.reason == "RATE_LIMITED"
    assert used == 3


def test_records_pass_the_limit_and_an_inactive_subscription() -> None:
    verdicts, used = decide(
        rule(1, DenialReason.SUBSCRIPTION_INACTIVE), BOUNDS, 1, [call(Kind.RECORD, 5)]
    )
    assert verdicts[0].event is not None and used == 6


def test_a_denied_consume_names_the_denial() -> None:
    inactive = decide(rule(5, DenialReason.SUBSCRIPTION_INACTIVE), BOUNDS, 0, [call(Kind.CONSUME)])
    unpermitted = decide(
        rule(5, DenialReason.PRIMITIVE_NOT_PERMITTED), BOUNDS, 0, [call(Kind.CONSUME)]
    )
    assert inactive[0][0].refusal is not None
    assert inactive[0][0].refusal.reason == "SUBSCRIPTION_INACTIVE"
    assert unpermitted[0][0].refusal is not None
    assert unpermitted[0][0].refusal.reason == "PRIMITIVE_NOT_PERMITTED"


def test_a_check_writes_nothing_and_says_why() -> None:
    verdicts, used = decide(rule(2), BOUNDS, 2, [call(Kind.CHECK), call(Kind.CONSUME)])
    assert verdicts[0].reason is DenialReason.QUOTA_EXCEEDED and verdicts[0].event is None
    assert used == 2


def test_unsubscribed_tenants_are_metered_never_limited() -> None:
    verdicts, used = decide(UNSUBSCRIBED, BOUNDS, 10**9, [call(Kind.CONSUME, 10**6)])
    assert verdicts[0].event is not None and used == 10**9 + 10**6


def test_each_threshold_is_crossed_by_exactly_one_call() -> None:
    verdicts, _ = decide(rule(10), BOUNDS, 0, [call(Kind.CONSUME, 3)] * 4)
    used = [0, *(v.standing.used for v in verdicts if v.event is not None)]
    steps = [crossed(10, before, after) for before, after in itertools.pairwise(used)]
    assert steps == [(), (), (80,)]  # 3, 6, 9 (90%), then 12 refused
    assert verdicts[3].refusal is not None
    assert crossed(10, 7, 12) == (80, 100)


def test_a_replay_is_the_same_request_by_digest_or_as_stored_before_digests() -> None:
    keyed = replace(call(Kind.RECORD, 2), idempotency_key="k", digest="d1")
    stored = EventRow(7, "t", "seo", 2, 0, 2, None, 1, 2, "pro", digest="d1")
    window = Window(from_micros(1), from_micros(2))
    assert replay(keyed, stored) == UsageRecorded(7, Standing(2, None, window, "pro"), True)
    assert isinstance(replay(keyed, replace(stored, digest="d2")), IdempotencyKeyReused)
    # A row of before migration 0009: owner, primitive, quantity and project.
    legacy = replace(stored, digest=None)
    assert not isinstance(replay(keyed, legacy), IdempotencyKeyReused)
    assert isinstance(replay(replace(keyed, quantity=3), legacy), IdempotencyKeyReused)
