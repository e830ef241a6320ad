"""Random sequences of checks, consumes, records, refunds, plan and status
changes, replayed and reused keys (the same request again, or another RPC
or instant that only the request's digest tells apart) and period
roll-overs (an injected clock), run
through every route of the metering core on both databases, by one process
or two (two batchers, each with its own connection and terms cache), must
give the reference model's answers, and leave counters equal to events."""

import asyncio
import random
from datetime import timedelta

import pytest

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.domain.errors import DomainError
from billing_service.domain.models import (
    Period,
    RefundResult,
    Standing,
    SubscriptionStatus,
    UsageRecorded,
)
from billing_service.domain.owners import Owner
from billing_service.domain.policy import enforcement
from billing_service.domain.quantities import UNIT
from billing_service.metering.batch_forming import UntilCount, WhileArriving
from billing_service.metering.batcher import Batcher
from billing_service.metering.engines import open_backend
from billing_service.metering.quota_engine import QuotaEngine
from billing_service.metering.router import FixedRouter, Route
from billing_service.metering.terms_cache import TermsCache

from .invariants import counters_equal_events
from .model import Answer, Event, Model

TENANTS = ("t0", "t1", "t2")
PRIMITIVES = ("a", "b")
STEPS = 120
WRITES = ("consume", "record", "consume_group")


def at_once(route: Route, kind: str, args: tuple) -> bool:  # type: ignore[type-arg]
    """Whether `route` decides a call of `kind` without queueing it."""
    if route is Route.READ:
        return kind == "check"
    if route is Route.CONDITIONAL:
        # A write without idempotency key; Envoy's group of one always queues.
        return kind in ("consume", "record") and args[3] is None
    return False


class Run:
    """One random sequence against the service and the model side by side."""

    def __init__(self, app: App, clock: FixedClock, engines: list[QuotaEngine], seed: int) -> None:
        self.app, self.clock, self.engines = app, clock, engines
        self.rng = random.Random(seed)
        self.model = Model()
        self.operator_id = 0
        self.keyed: dict[str, tuple[str, tuple[object, ...]]] = {}  # a key's first call
        self.ids: dict[int, Event] = {}  # the service's event ids

    async def setup(self) -> None:
        operator = await self.app.store.create_operator("acme", self.clock.now())
        self.operator_id = operator.id
        await self.change_plan()
        for tenant in TENANTS[:2]:  # the last tenant has no subscription
            await self.subscribe(tenant, SubscriptionStatus.ACTIVE)

    async def change_plan(self) -> None:
        quotas = {p: self.rng.randint(0, 8) for p in PRIMITIVES if self.rng.random() < 0.8}
        period = self.rng.choice([Period.DAY, Period.WEEK])
        await self.app.catalog.upsert_plan(self.operator_id, "p", "P", "", "", quotas, period)
        await self.refresh_terms()

    async def subscribe(self, tenant: str, status: SubscriptionStatus) -> None:
        await self.app.subscriptions.set(
            self.operator_id, Owner.user(tenant), "p", status, "", "", None, False
        )
        await self.refresh_terms()

    async def refresh_terms(self) -> None:
        for tenant in TENANTS:
            self.model.terms[tenant] = await self.app.store.get_terms(self.operator_id, tenant)

    def call(self) -> tuple[str, tuple[object, ...]]:
        """A random metered call: (kind, arguments)."""
        rng = self.rng
        tenant, primitive, quantity = rng.choice(TENANTS), rng.choice(PRIMITIVES), rng.randint(1, 3)
        # consume_group: ConsumeQuota as Envoy's ShouldRateLimit sends it (a
        # group of one call, which joins the other calls' batch).
        kind = rng.choice(["check", "consume", "consume", "record", "consume_group"])
        if kind == "check":
            return kind, (tenant, primitive, quantity)
        key: str | None = None
        ago = timedelta(hours=rng.choice([0, 0, 1, 30])) if kind == "record" else timedelta(0)
        if rng.random() < 0.5:
            if self.keyed and rng.random() < 0.3:
                return self.retry(rng.choice(list(self.keyed)))
            key = f"k{rng.random()}"
            self.keyed[key] = kind, (tenant, primitive, quantity, key, ago)
        return kind, (tenant, primitive, quantity, key, ago)

    def retry(self, key: str) -> tuple[str, tuple[object, ...]]:
        """A call under a key used before: its first call again, or that call
        changed in a field that only the request's digest tells apart (the
        RPC, or RecordUsage's instant), or another call altogether."""
        kind, (tenant, primitive, quantity, _, ago) = self.keyed[key]
        assert isinstance(ago, timedelta)
        roll = self.rng.random()
        if roll < 0.4:
            return kind, (tenant, primitive, quantity, key, ago)
        if roll < 0.8:
            other = self.rng.choice([k for k in WRITES if k != kind])
            if kind == "record" and self.rng.random() < 0.5:
                other, ago = "record", ago + timedelta(hours=self.rng.choice([1, 30]))
            return other, (tenant, primitive, quantity, key, ago)
        tenant, primitive = self.rng.choice(TENANTS), self.rng.choice(PRIMITIVES)
        return kind, (tenant, primitive, self.rng.randint(1, 3), key, ago)

    async def on_service(self, engine: QuotaEngine, kind: str, args: tuple) -> Answer:  # type: ignore[type-arg]
        op = self.operator_id
        try:
            if kind == "check":
                decision = await engine.check(op, Owner.user(args[0]), *args[1:])
                outcome = str(decision.reason) if decision.reason else "allowed"
                return Answer(outcome, *_units(decision.standing))
            tenant, primitive, quantity, key, ago = args
            if kind == "consume":
                recorded = await engine.consume(
                    op, Owner.user(tenant), primitive, quantity, key or ""
                )
            elif kind == "consume_group":
                result = await engine.consume_all(
                    op, [(Owner.user(tenant), primitive, quantity, key or "")]
                )
                answer = result.answers[0]
                if isinstance(answer, DomainError):
                    raise answer
                assert isinstance(answer, UsageRecorded)
                recorded = answer
            else:
                at = self.clock.now() - ago
                recorded = await engine.record(
                    op, Owner.user(tenant), primitive, quantity, key or "", at
                )
        except DomainError as error:
            return Answer(error.reason)
        outcome = "replayed" if recorded.replayed else "recorded"
        return Answer(outcome, *_units(recorded.standing)), recorded.event_id  # type: ignore[return-value]

    def on_model(self, kind: str, args: tuple) -> tuple[Answer, Event | None]:  # type: ignore[type-arg]
        now = self.clock.now()
        if kind == "check":
            tenant, primitive, quantity = args
            return self.model.check(tenant, primitive, quantity, now), None
        tenant, primitive, quantity, key, ago = args
        consume = kind in ("consume", "consume_group")
        at = now - ago
        request = (kind, tenant, primitive, quantity, at if kind == "record" else None)
        return self.model.write(consume, tenant, primitive, quantity, at, key, request)

    async def burst(self, engine: QuotaEngine, size: int, route: Route) -> None:
        """`size` calls sent together, which the model takes in that order. A
        call that `route` decides at once (a check that reads, a write without
        idempotency key written by one statement) overtakes calls still
        queued, as it may (they are not answered yet): such calls go alone."""
        calls = [self.call() for _ in range(size)]
        if len(calls) > 1:
            calls = [c for c in calls if not at_once(route, *c)] or calls[:1]
        results = await asyncio.gather(*(self.on_service(engine, k, a) for k, a in calls))
        for (kind, args), result in zip(calls, results, strict=True):
            expected, event = self.on_model(kind, args)
            answer = result[0] if isinstance(result, tuple) else result
            assert answer == expected, (kind, args)
            if event is not None and isinstance(result, tuple):
                self.ids[result[1]] = event

    async def refund(self, engine: QuotaEngine) -> None:
        event_id = self.rng.choice([*self.ids, 10**9]) if self.ids else 10**9
        try:
            result: RefundResult | None = await engine.refund(self.operator_id, str(event_id))
        except DomainError as error:
            assert error.reason == "NOT_FOUND" and event_id not in self.ids
            result = None
        expected = self.model.refund(self.ids.get(event_id), self.clock.now())
        if result is not None:
            outcome = "refunded" if result.refunded else "already refunded"
            assert Answer(outcome, *_units(result.standing)) == expected

    async def step(self, burst: int, route: Route) -> None:
        engine = self.rng.choice(self.engines)
        roll = self.rng.random()
        if roll < 0.06:
            await self.change_plan()
        elif roll < 0.1:
            status = self.rng.choice([SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED])
            await self.subscribe(self.rng.choice(TENANTS), status)
        elif roll < 0.15:
            self.clock.at += timedelta(hours=self.rng.choice([1, 7, 25]))
        elif roll < 0.22:
            await self.refund(engine)
        else:
            await self.burst(engine, self.rng.randint(1, burst), route)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    ("route", "burst", "processes"),
    [
        (Route.READ, 1, 1),
        (Route.CONDITIONAL, 1, 1),
        (Route.QUEUED, 1, 1),
        (Route.QUEUED, 6, 1),
        (Route.CONDITIONAL, 4, 2),
        (Route.READ, 4, 2),
    ],
    ids=["read", "conditional", "queued", "queued-batches", "two-conditional", "two-read"],
)
async def test_every_route_gives_the_models_answers(
    app: App, clock: FixedClock, route: Route, burst: int, processes: int, seed: int
) -> None:
    batchers = [
        Batcher(
            open_backend(app.settings.database_url),
            TermsCache(enforcement),
            FixedRouter(route),
            UntilCount(burst) if burst > 1 else WhileArriving(),
        )
        for _ in range(processes)
    ]
    engines = [QuotaEngine(app.store, batcher, clock) for batcher in batchers]
    run = Run(app, clock, engines, seed)
    try:
        await run.setup()
        for _ in range(STEPS):
            await run.step(burst, route)
    finally:
        for batcher in batchers:
            await batcher.close()
    assert await counters_equal_events(app.settings.database_url)


def _units(standing: Standing) -> tuple[int, int | None]:
    """A standing's figures in whole units, as the model counts."""
    limit = None if standing.limit is None else standing.limit // UNIT
    return standing.used // UNIT, limit
