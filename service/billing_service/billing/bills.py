"""A month's bill, from the daily aggregates of its events: each meter's
figure by its aggregation, the priced meters' line items, and the credits
drawn. Pure: storage hands in the rows, the caller the plan and meters."""

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from ..catalog.meter_model import Aggregation, Meter
from ..domain import quantities
from ..domain.errors import InvalidArgument
from ..domain.models import Plan

CENT = Decimal("0.01")
DAY_MICROS = 86_400_000_000
FIRST_YEAR, LAST_YEAR = 1970, 2200


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """One usage_daily row: a primitive's events of one UTC day (and project)."""

    project_id: str
    primitive: str
    day: int  # days since the epoch
    total: int  # micro-units
    peak: int
    last_value: int
    last_at: int
    last_id: int
    events: int


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, year: int, month: int) -> "Month":
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise InvalidArgument("year", f"must be between {FIRST_YEAR} and {LAST_YEAR}")
        if not 1 <= month <= 12:
            raise InvalidArgument("month", f"must be between 1 and 12, got {month}")
        return cls(year, month)

    @classmethod
    def of_instant(cls, at: datetime) -> "Month":
        """The calendar month, in UTC, that contains `at`."""
        utc = at.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def of_day(cls, day: int) -> "Month":
        at = datetime.fromtimestamp(day * 86_400, UTC)
        return cls(at.year, at.month)

    @property
    def label(self) -> str:
        return f"{calendar.month_name[self.month]} {self.year}"

    @property
    def first_day(self) -> int:
        return _days(datetime(self.year, self.month, 1, tzinfo=UTC))

    @property
    def last_day(self) -> int:
        return self.first_day + calendar.monthrange(self.year, self.month)[1] - 1

    @property
    def end(self) -> datetime:
        """The instant the month ends (exclusive)."""
        return datetime.fromtimestamp((self.last_day + 1) * 86_400, UTC)


def _days(at: datetime) -> int:
    return int(at.timestamp()) // 86_400


def aggregate(rows: Iterable[DailyUsage], aggregation: Aggregation) -> int:
    """The figure of one meter over `rows` (its days), in micro-units."""
    held = [row for row in rows if row.events > 0]
    if not held:
        return 0
    if aggregation is Aggregation.SUM:
        return sum(row.total for row in held)
    if aggregation is Aggregation.MAX:
        return max(row.peak for row in held)
    return max(held, key=lambda row: (row.last_at, row.last_id)).last_value


def figures(rows: Iterable[DailyUsage], meter_of: Callable[[str], Meter]) -> dict[str, int]:
    """Every primitive's figure over `rows`, by primitive, in micro-units."""
    by_primitive: dict[str, list[DailyUsage]] = {}
    for row in rows:
        by_primitive.setdefault(row.primitive, []).append(row)
    return {
        primitive: aggregate(held, meter_of(primitive).aggregation)
        for primitive, held in sorted(by_primitive.items())
        if any(row.events > 0 for row in held)
    }


@dataclass(frozen=True, slots=True)
class LineItem:
    meter: Meter
    quantity: Decimal
    unit_price: Decimal
    included: Decimal
    total_cost: Decimal  # in the plan's currency, to the cent


def line_items(
    usage: dict[str, int], plan: Plan | None, meter_of: Callable[[str], Meter]
) -> list[LineItem]:
    """A line per priced meter with usage: the units beyond the included
    ones times the unit price, rounded half-even to the cent once."""
    if plan is None:
        return []
    items = []
    for key, price in sorted(plan.prices.items()):
        if key not in usage:
            continue
        quantity = quantities.to_decimal(usage[key])
        billable = max(quantity - price.included, Decimal(0))
        total = (billable * price.unit_price).quantize(CENT, rounding=ROUND_HALF_EVEN)
        items.append(LineItem(meter_of(key), quantity, price.unit_price, price.included, total))
    return items


def total_cents(items: Sequence[LineItem]) -> Decimal:
    return sum((item.total_cost for item in items), Decimal(0)).scaleb(2).quantize(Decimal(1))


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    amount_cents: int
    granted_at: datetime
    expires_at: datetime | None
    reason: str


def draw_credits(
    dues: Sequence[tuple[Month, Decimal]], grants: Sequence[Grant]
) -> tuple[dict[Month, Decimal], dict[int, Decimal]]:
    """Each month's due, in month order, draws on the grants made before its
    end and unexpired at its end, the earliest expiry first (grants without
    expiry last). Returns the cents applied per month and left per grant."""
    left = {grant.id: Decimal(grant.amount_cents) for grant in grants}
    order = sorted(grants, key=lambda g: (g.expires_at is None, g.expires_at or g.granted_at, g.id))
    applied: dict[Month, Decimal] = {}
    for month, due in sorted(dues):
        end, drawn = month.end, Decimal(0)
        for grant in order:
            usable = grant.granted_at < end and (
                grant.expires_at is None or grant.expires_at >= end
            )
            if not usable or drawn == due:
                continue
            take = min(left[grant.id], due - drawn)
            left[grant.id] -= take
            drawn += take
        applied[month] = drawn
    return applied, left
