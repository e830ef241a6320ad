"""Quota period arithmetic: anchors, month-end clamping, leap years,
roll-forward, and calendar periods in UTC."""

import calendar
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_service.domain.models import (
    Period,
    Plan,
    Subscription,
    SubscriptionStatus,
    TenantTerms,
    Window,
)
from billing_service.domain.periods import window_at
from billing_service.domain.policy import enforcement

from ..metering.usage_helpers import utc


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        (Period.DAY, utc(2026, 6, 15, 23, 59), utc(2026, 6, 15), utc(2026, 6, 16)),
        # 2026-06-15 is a Monday; weeks start on Monday.
        (Period.WEEK, utc(2026, 6, 15), utc(2026, 6, 15), utc(2026, 6, 22)),
        (Period.WEEK, utc(2026, 6, 21, 23), utc(2026, 6, 15), utc(2026, 6, 22)),
        (Period.MONTH, utc(2026, 6, 30, 23, 59, 59), utc(2026, 6, 1), utc(2026, 7, 1)),
        (Period.MONTH, utc(2026, 12, 31, 12), utc(2026, 12, 1), utc(2027, 1, 1)),
        (Period.YEAR, utc(2028, 2, 29), utc(2028, 1, 1), utc(2029, 1, 1)),
    ],
)
def test_calendar_periods_in_utc(
    period: Period, at: datetime, start: datetime, end: datetime
) -> None:
    assert window_at(period, None, at) == Window(start, end)


def test_calendar_period_of_a_non_utc_instant_is_taken_in_utc() -> None:
    from zoneinfo import ZoneInfo

    at = datetime(2026, 7, 1, 1, 0, tzinfo=ZoneInfo("Europe/Paris"))  # June 30, 23:00 UTC
    assert window_at(Period.MONTH, None, at) == Window(utc(2026, 6, 1), utc(2026, 7, 1))


def test_month_anchor_steps_back_from_period_end() -> None:
    anchor = utc(2026, 7, 1)
    assert window_at(Period.MONTH, anchor, utc(2026, 6, 15)) == Window(utc(2026, 6, 1), anchor)


def test_anchor_on_the_31st_clamps_to_month_end_and_recovers() -> None:
    anchor = utc(2026, 1, 31, 9, 30)
    assert window_at(Period.MONTH, anchor, utc(2026, 2, 10)) == Window(
        anchor, utc(2026, 2, 28, 9, 30)
    )
    # The clamp is taken from the anchor's own day each time: Mar 31, not Mar 28.
    assert window_at(Period.MONTH, anchor, utc(2026, 3, 1)) == Window(
        utc(2026, 2, 28, 9, 30), utc(2026, 3, 31, 9, 30)
    )
    assert window_at(Period.MONTH, anchor, utc(2026, 4, 30, 9, 30)) == Window(
        utc(2026, 4, 30, 9, 30), utc(2026, 5, 31, 9, 30)
    )


def test_anchor_on_the_31st_in_a_leap_year_falls_on_feb_29() -> None:
    anchor = utc(2028, 3, 31)
    assert window_at(Period.MONTH, anchor, utc(2028, 3, 15)) == Window(utc(2028, 2, 29), anchor)


def test_yearly_anchor_on_feb_29() -> None:
    anchor = utc(2028, 2, 29)
    assert window_at(Period.YEAR, anchor, utc(2027, 6, 1)) == Window(utc(2027, 2, 28), anchor)
    assert window_at(Period.YEAR, anchor, utc(2029, 3, 1)) == Window(
        utc(2029, 2, 28), utc(2030, 2, 28)
    )
    assert window_at(Period.YEAR, anchor, utc(2032, 2, 29)) == Window(
        utc(2032, 2, 29), utc(2033, 2, 28)
    )


def test_anchor_in_the_past_rolls_forward_by_whole_periods() -> None:
    # Renewal webhook late by two and a half months.
    anchor = utc(2026, 3, 15, 12)
    assert window_at(Period.MONTH, anchor, utc(2026, 5, 31)) == Window(
        utc(2026, 5, 15, 12), utc(2026, 6, 15, 12)
    )
    assert window_at(Period.WEEK, anchor, anchor + timedelta(days=20)) == Window(
        anchor + timedelta(days=14), anchor + timedelta(days=21)
    )
    assert window_at(Period.DAY, anchor, anchor + timedelta(days=3, hours=1)) == Window(
        anchor + timedelta(days=3), anchor + timedelta(days=4)
    )


def test_anchor_far_in_the_future_steps_back() -> None:
    anchor = utc(2027, 1, 10)
    assert window_at(Period.MONTH, anchor, utc(2026, 6, 15)) == Window(
        utc(2026, 6, 10), utc(2026, 7, 10)
    )


def test_boundaries_are_start_inclusive_end_exclusive() -> None:
    anchor = utc(2026, 7, 1)
    assert window_at(Period.MONTH, anchor, anchor).start == anchor
    assert window_at(Period.MONTH, anchor, anchor - timedelta(microseconds=1)).end == anchor


@pytest.mark.parametrize("period", list(Period))
def test_every_instant_of_a_year_lies_in_its_window(period: Period) -> None:
    anchor = utc(2024, 1, 31, 5)
    at = utc(2024, 1, 1)
    while at < utc(2025, 3, 1):
        window = window_at(period, anchor, at)
        assert window.contains(at)
        assert window_at(period, anchor, window.end).start == window.end
        at += timedelta(hours=37)


def stripe_period_end(anchor: datetime, cycles: int) -> datetime:
    """Stripe's rule: the end of the `cycles`-th monthly period from the
    anchor falls on the anchor's day and time, `cycles` months on, or on the
    month's last day when the month is shorter; the anchor never moves."""
    year, month = divmod(anchor.month - 1 + cycles, 12)
    year += anchor.year
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


@settings(max_examples=600, deadline=None)
@given(
    year=st.integers(2023, 2029),  # leap years 2024 and 2028
    month=st.integers(1, 12),
    day=st.integers(1, 31),
    time_of_day=st.times(),
    cycle=st.integers(1, 48),
    into=st.integers(0, 999_999),  # millionths of the period
)
def test_stripe_renewed_periods_are_stripes_for_every_anchor_day(
    year: int, month: int, day: int, time_of_day: time, cycle: int, into: int
) -> None:
    """A subscription as Stripe describes it after `cycle` renewals (its
    billing_cycle_anchor and the clamped current_period_end) has Stripe's
    period at every instant of it."""
    assume(day <= calendar.monthrange(year, month)[1])
    anchor = datetime.combine(datetime(year, month, day), time_of_day, tzinfo=UTC)
    start, end = stripe_period_end(anchor, cycle - 1), stripe_period_end(anchor, cycle)
    at = start + (end - start) * into // 1_000_000
    subscription = Subscription(
        tenant_id="t",
        plan_key="pro",
        status=SubscriptionStatus.ACTIVE,
        stripe_customer_id="cus_1",
        stripe_subscription_id="sub_1",
        current_period_end=end,
        account_kit_id=None,
        created_at=anchor,
        updated_at=at,
        billing_cycle_anchor=anchor,
    )
    plan = Plan("pro", "Pro", None, "price_pro", {"seo": 3}, Period.MONTH, False, anchor, anchor)

    rule = enforcement(TenantTerms(subscription, plan, None), "seo")

    assert rule.window(at) == Window(start, end)
