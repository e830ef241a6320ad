"""Quota period arithmetic: anchors, month-end clamping, leap years,
roll-forward, and calendar periods in UTC."""

from datetime import datetime, timedelta

import pytest

from billing_service.domain.models import Period, Window
from billing_service.domain.periods import window_at

from .usage_helpers import utc


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
