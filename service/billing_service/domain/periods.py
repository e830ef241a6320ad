"""Quota period arithmetic.

A subscription with an anchor (Stripe's billing_cycle_anchor, else its
current_period_end) has periods whose boundaries are the anchor stepped by
whole periods, backwards and forwards; month and year steps clamp the day to
the month's length, always from the anchor's own day (an anchor on Jan 31
gives Feb 28, then Mar 31): Stripe's rule, so the periods are Stripe's. The
instant is the caller's clock's. Without an anchor, periods are calendar
periods in UTC (weeks start on Monday).
"""

import calendar
from datetime import UTC, datetime, timedelta

from .models import Period, Window

_FIXED = {Period.DAY: timedelta(days=1), Period.WEEK: timedelta(weeks=1)}
_MONTHS = {Period.MONTH: 1, Period.YEAR: 12}


_MAX_REMEMBERED = 50_000
# The last window computed per (period, anchor): nearly every call of the hot
# path falls in the same window as the previous call of the same terms.
_last_window: dict[tuple[Period, datetime | None], Window] = {}


def window_at(period: Period, anchor: datetime | None, at: datetime) -> Window:
    """The period of `period` length that contains `at`."""
    last = _last_window.get((period, anchor))
    if last is not None and last.start <= at < last.end:
        return last
    window = _compute_window(period, anchor, at)
    if len(_last_window) >= _MAX_REMEMBERED:
        _last_window.clear()
    _last_window[(period, anchor)] = window
    return window


def _compute_window(period: Period, anchor: datetime | None, at: datetime) -> Window:
    if anchor is None:
        return _calendar_window(period, at)
    if period in _FIXED:
        length = _FIXED[period]
        steps = (at - anchor) // length  # floor division of timedeltas
        start = anchor + steps * length
        return Window(start, start + length)
    months = _MONTHS[period]
    # First guess from the calendar, then step until start <= at < end.
    k = ((at.year - anchor.year) * 12 + (at.month - anchor.month)) // months
    start = _add_months(anchor, k * months)
    while start > at:
        k -= 1
        start = _add_months(anchor, k * months)
    end = _add_months(anchor, (k + 1) * months)
    while end <= at:
        k += 1
        start, end = end, _add_months(anchor, (k + 1) * months)
    return Window(start, end)


def _calendar_window(period: Period, at: datetime) -> Window:
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return Window(day, day + timedelta(days=1))
    if period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
        return Window(start, start + timedelta(weeks=1))
    if period is Period.MONTH:
        start = day.replace(day=1)
        return Window(start, _add_months(start, 1))
    start = day.replace(month=1, day=1)
    return Window(start, start.replace(year=start.year + 1))


def _add_months(anchor: datetime, months: int) -> datetime:
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)
