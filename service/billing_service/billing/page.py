"""The billing page: months' usage and cost, usage by project, the months
with usage, credits, and AI calls recorded as usage (BillingService)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ..catalog.meter_model import Meter, undeclared
from ..catalog.meters import Meters
from ..catalog.projects import Projects
from ..catalog.store import Store
from ..clock import Clock
from ..domain import validation as v
from ..domain.errors import DomainError, InvalidArgument
from ..domain.instants import to_micros
from ..domain.models import DEFAULT_CURRENCY, Plan, UsageRecorded
from ..domain.owners import Owner
from ..domain.quantities import PLACES, micro
from ..domain.usage_keys import UsageKey
from ..metering.batcher import Batcher
from ..metering.calls import Call, Kind, request_digest
from ..metering.quota_engine import recorded_at
from . import bills
from .bills import DailyUsage, Grant, LineItem, Month
from .ledger import LedgerStore

MAX_TOKENS = 1_000_000_000
MAX_CREDIT_CENTS = Decimal(100_000_000)
MAX_RANGE_DAYS = 366
AI_TOKENS, AI_COST = "ai_tokens", "ai_cost_cents"


@dataclass(frozen=True, slots=True)
class MonthBill:
    month: Month
    usage: dict[str, int]  # micro-units by meter key
    items: list[LineItem]
    total_cents: Decimal
    credits_cents: Decimal = Decimal(0)

    @property
    def due_cents(self) -> Decimal:
        return self.total_cents - self.credits_cents


@dataclass(frozen=True, slots=True)
class AiRecorded:
    event_ids: tuple[int, ...]  # every event recorded: ai_tokens' first, if any
    tokens: int
    cost_cents: int  # micro-units
    replayed: bool


class Billing:
    def __init__(
        self,
        store: Store,
        ledger: LedgerStore,
        meters: Meters,
        projects: Projects,
        batcher: Batcher,
        clock: Clock,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._meters = meters
        self._projects = projects
        self._batcher = batcher
        self._clock = clock

    async def summary(
        self, operator_id: int, owner: Owner, year: int, month: int
    ) -> tuple[MonthBill, str]:
        """The month's bill (year and month 0: the current month's) and the
        plan's currency (the default currency without a plan)."""
        wanted = self._month(year, month)
        bills_by_month, currency = await self._bills(operator_id, owner)
        empty = MonthBill(wanted, {}, [], Decimal(0))
        return bills_by_month.get(wanted, empty), currency

    async def periods(self, operator_id: int, owner: Owner) -> list[MonthBill]:
        bills_by_month, _ = await self._bills(operator_id, owner)
        return [bills_by_month[month] for month in sorted(bills_by_month, reverse=True)]

    async def by_project(
        self, operator_id: int, owner: Owner, year: int, month: int
    ) -> list[tuple[str, str, dict[str, int]]]:
        """(project id, name, usage by meter) of each project with usage in
        the month (year and month 0: the current month)."""
        wanted = self._month(year, month)
        rows = await self._ledger.daily_usage(
            operator_id, owner.key, wanted.first_day, wanted.last_day
        )
        meter_of = await self._meter_lookup(operator_id)
        by_project: dict[str, list[DailyUsage]] = {}
        for row in rows:
            if row.project_id:
                by_project.setdefault(row.project_id, []).append(row)
        names = await self._ledger.project_names(operator_id, sorted(by_project))
        found = [
            (project, names.get(project, project), bills.figures(held, meter_of))
            for project, held in sorted(by_project.items())
        ]
        return [entry for entry in found if entry[2]]

    async def project_usage(
        self, operator_id: int, project_id: str, from_date: str, to_date: str
    ) -> list[tuple[Meter, int]]:
        first, last = _day("from_date", from_date), _day("to_date", to_date)
        if last < first:
            raise InvalidArgument("to_date", "must not be before from_date")
        if last - first >= MAX_RANGE_DAYS:
            raise InvalidArgument(
                "to_date", f"must be at most {MAX_RANGE_DAYS} days after from_date"
            )
        owner_key = await self._projects.owner_key(
            operator_id, v.tenant_id("project_id", project_id)
        )
        rows = await self._ledger.daily_usage(operator_id, owner_key, first, last, project_id)
        meter_of = await self._meter_lookup(operator_id)
        usage = bills.figures(rows, meter_of)
        return [(meter_of(key), used) for key, used in usage.items()]

    async def grant(
        self,
        operator_id: int,
        owner: Owner,
        amount_cents: str,
        expires_at: datetime | None,
        reason: str,
        idempotency_key: str,
    ) -> tuple[Grant, bool]:
        amount = v.decimal(
            "amount_cents", amount_cents, places=0, maximum=MAX_CREDIT_CENTS, positive=True
        )
        now = self._clock.now()
        if expires_at is not None:
            v.instant("expire_time", expires_at, now)
            if expires_at <= now:
                raise InvalidArgument("expire_time", "must be in the future")
        return await self._ledger.grant_credits(
            operator_id,
            owner.key,
            int(amount),
            expires_at,
            v.name("reason", reason),
            v.idempotency_key("idempotency_key", idempotency_key),
            now,
        )

    async def balance(
        self, operator_id: int, owner: Owner
    ) -> tuple[Decimal, list[tuple[Grant, Decimal]]]:
        grants = await self._ledger.grants(operator_id, owner.key)
        bills_by_month, _ = await self._bills(operator_id, owner)
        dues = [(month, bill.total_cents) for month, bill in bills_by_month.items()]
        _, left = bills.draw_credits(dues, grants)
        now = self._clock.now()
        remaining = [
            (g, left[g.id] if g.expires_at is None or g.expires_at > now else Decimal(0))
            for g in grants
        ]
        return sum((r for _, r in remaining), Decimal(0)), remaining

    async def record_ai(
        self,
        operator_id: int,
        project_id: str,
        tokens: tuple[int, int, int],
        cost_cents: str,
        provider_model: str,
        idempotency_key: str,
        occurred_at: datetime | None,
    ) -> AiRecorded:
        """One AI call: ai_tokens and ai_cost_cents events, both or neither."""
        for field, count in zip(
            ("input_tokens", "output_tokens", "reasoning_tokens"), tokens, strict=True
        ):
            if not 0 <= count <= MAX_TOKENS:
                raise InvalidArgument(field, f"must be between 0 and {MAX_TOKENS}, got {count}")
        cost = v.decimal("cost_cents", cost_cents, places=PLACES, maximum=Decimal(v.MAX_QUANTITY))
        if len(provider_model) > v.MAX_NAME or v.CONTROL_RE.search(provider_model):
            raise InvalidArgument("provider_model", "must be at most 200 characters, no controls")
        idem = v.idempotency_key("idempotency_key", idempotency_key)
        owner_key = await self._projects.owner_key(
            operator_id, v.tenant_id("project_id", project_id)
        )
        now = self._clock.now()
        at = recorded_at(occurred_at, now)
        breakdown = {
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "reasoning_tokens": tokens[2],
            "cost_cents": format(cost, "f"),
            "provider_model": provider_model,
        }
        quantities = ((AI_TOKENS, micro(sum(tokens))), (AI_COST, int(cost.scaleb(PLACES))))
        given_at = None if occurred_at is None else to_micros(at)
        # The cost in micro-units: 0.05 and 0.050 are one cost.
        digest = request_digest(
            idem, "ai", project_id, tokens, quantities[1][1], provider_model, given_at
        )
        calls = [
            Call(
                Kind.RECORD,
                UsageKey(operator_id, owner_key, meter),
                quantity,
                at,
                now,
                _ai_key(idem, position, meter),
                project_id,
                json.dumps(breakdown) if meter == AI_TOKENS else None,
                digest,
            )
            for position, (meter, quantity) in enumerate((m, q) for m, q in quantities if q > 0)
        ]
        if not calls:
            raise InvalidArgument("input_tokens", "an AI call records tokens or a cost")
        result = await self._batcher.write_all(calls)
        answers = [result.answers[index] for index in range(len(calls))]
        for answer in answers:
            if isinstance(answer, DomainError):
                raise answer
        recorded = [a for a in answers if isinstance(a, UsageRecorded)]
        return AiRecorded(
            tuple(r.event_id for r in recorded),
            sum(tokens),
            quantities[1][1],
            all(r.replayed for r in recorded),
        )

    def _month(self, year: int, month: int) -> Month:
        """The month asked for; neither year nor month given: the calendar
        month in UTC that contains now, the month a billing page shows."""
        if year == 0 and month == 0:
            return Month.of_instant(self._clock.now())
        for field, value in (("year", year), ("month", month)):
            if value == 0:
                raise InvalidArgument(
                    field, "give year and month together, or neither for the current month"
                )
        return Month.of(year, month)

    async def _plan(self, operator_id: int, owner: Owner) -> Plan | None:
        return (await self._store.get_terms(operator_id, owner.key)).plan

    async def _meter_lookup(self, operator_id: int) -> Callable[[str], Meter]:
        known = await self._meters.all(operator_id)
        return lambda key: known.get(key) or undeclared(key)

    async def _bills(self, operator_id: int, owner: Owner) -> tuple[dict[Month, MonthBill], str]:
        """Every month with usage, priced with the owner's plan, credits drawn."""
        rows = await self._ledger.daily_usage(operator_id, owner.key)
        meter_of = await self._meter_lookup(operator_id)
        plan = await self._plan(operator_id, owner)
        by_month: dict[Month, list[DailyUsage]] = {}
        for row in rows:
            by_month.setdefault(Month.of_day(row.day), []).append(row)
        priced = {}
        for month, held in by_month.items():
            usage = bills.figures(held, meter_of)
            if usage:
                items = bills.line_items(usage, plan, meter_of)
                priced[month] = MonthBill(month, usage, items, bills.total_cents(items))
        grants = await self._ledger.grants(operator_id, owner.key)
        applied, _ = bills.draw_credits([(m, b.total_cents) for m, b in priced.items()], grants)
        drawn = {
            month: MonthBill(
                b.month, b.usage, b.items, b.total_cents, applied.get(month, Decimal(0))
            )
            for month, b in priced.items()
        }
        return drawn, plan.currency if plan is not None else DEFAULT_CURRENCY


def _ai_key(idempotency_key: str | None, position: int, meter: str) -> str | None:
    """An AI call's key is its first event's; a second event's is the key
    with its meter appended. Every retry thus finds the call by the key
    itself, whatever its split of tokens and cost (docs/design.md)."""
    if idempotency_key is None or position == 0:
        return idempotency_key
    return f"{idempotency_key}#{meter}"


def _day(field: str, text: str) -> int:
    """A `YYYY-MM-DD` date as days since the epoch."""
    try:
        parsed = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None or not 1970 <= parsed.year <= bills.LAST_YEAR:
        raise InvalidArgument(field, f"must be a date YYYY-MM-DD from 1970, got '{text[:40]}'")
    return (parsed - date(1970, 1, 1)).days
