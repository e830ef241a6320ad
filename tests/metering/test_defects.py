"""Regression tests of the four defects a review found in the metering core
(each failed before its fix)."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from billing.v1 import usage_pb2
from sqlalchemy.engine import make_url

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.domain.errors import DomainError
from billing_service.domain.models import Period, Standing, SubscriptionStatus, UsageRecorded
from billing_service.domain.owners import Owner
from billing_service.domain.policy import enforcement
from billing_service.domain.quantities import micro
from billing_service.domain.usage_keys import UsageKey
from billing_service.metering.batch_forming import UntilCount
from billing_service.metering.batcher import Batcher
from billing_service.metering.calls import Call, Kind
from billing_service.metering.engines import open_backend
from billing_service.metering.quota_engine import QuotaEngine
from billing_service.metering.router import FixedRouter, Route
from billing_service.metering.terms_cache import TermsCache

from ..conftest import Client
from .invariants import counters_equal_events
from .usage_helpers import consume, subscribe

postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def batcher(
    app: App, company: int = 1, max_tenants: int = 100_000, route: Route | None = None
) -> Batcher:
    return Batcher(
        open_backend(app.settings.database_url),
        TermsCache(enforcement, max_tenants),
        FixedRouter(route) if route else None,
        forming=UntilCount(company) if company > 1 else None,
    )


async def _plan(app: App, operator_id: int, limit: int) -> None:
    await app.catalog.upsert_plan(operator_id, "p", "P", "", "", {"seo": limit}, Period.MONTH)


async def _answers(engine: QuotaEngine, operator_id: int, tenant: str, n: int) -> list[object]:
    answers: list[object] = []
    for _ in range(n):
        try:
            answers.append(
                (await engine.consume(operator_id, Owner.user(tenant), "seo", 1, "")).standing
            )
        except DomainError as error:
            answers.append(error.reason)
    return answers


@postgres_only
async def test_no_decision_under_terms_older_than_an_earlier_ones(
    app: App, clock: FixedClock
) -> None:
    """Defect 1: process A's batch waits for one tenant's counter row while
    the quota is lowered and process B consumes another tenant; when A's
    wait ends, no answer on that tenant goes back to the older, higher limit,
    and no answer received after the change was acknowledged carries it."""
    operator = await app.store.create_operator("acme", clock.now())
    op = operator.id
    await _plan(app, op, 100)
    for tenant in ("t1", "t2"):
        await app.subscriptions.set(
            op, Owner.user(tenant), "p", SubscriptionStatus.ACTIVE, "", "", None, False
        )
    a, b = batcher(app, company=2, route=Route.QUEUED), batcher(app)
    engine_a, engine_b = QuotaEngine(app.store, a, clock), QuotaEngine(app.store, b, clock)
    await _answers(engine_b, op, "t2", 60)  # t2 at 60, terms known to both
    await _answers(engine_a, op, "t1", 1)
    url = make_url(app.settings.database_url)
    holder = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    received: list[tuple[float, object]] = []
    loop = asyncio.get_running_loop()

    async def timed(call: Awaitable[object]) -> tuple[float, object]:
        try:
            answer = await call
        except DomainError as error:
            answer = error.reason
        return loop.time(), answer

    async def consume_b() -> None:
        for answer in await _answers(engine_b, op, "t2", 1):
            received.append((loop.time(), answer))

    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT * FROM usage_counters WHERE tenant_id = 't1' FOR UPDATE")
        batch_a = asyncio.gather(
            engine_a.consume(op, Owner.user("t1"), "seo", 1, ""),
            timed(engine_a.consume(op, Owner.user("t2"), "seo", 1, "")),
        )
        await asyncio.sleep(0.3)  # A's batch waits for t1's row
        lowered = asyncio.create_task(_plan(app, op, 70))
        later_b = asyncio.gather(*(consume_b() for _ in range(15)))
        await asyncio.sleep(0.3)
        await holder.execute("COMMIT")
        first = await batch_a
        await lowered
        acknowledged = loop.time()
        await later_b
        for _ in range(5):
            await consume_b()
    finally:
        await holder.close()
        await a.close()
        await b.close()
    on_t2 = [first[1], *received]
    standings = [
        (at, s.standing if isinstance(s, UsageRecorded) else s)
        for at, s in on_t2
        if isinstance(s, Standing | UsageRecorded)
    ]
    # Ordered by usage, the limits never go back up to an older, higher one.
    limits = [s.limit or 0 for _, s in sorted(standings, key=lambda a: a[1].used)]
    assert limits == sorted(limits, reverse=True), standings
    assert all(s.limit == micro(70) for at, s in standings if at > acknowledged)
    assert await counters_equal_events(app.settings.database_url)


@postgres_only
async def test_a_dropped_connection_is_unavailable_then_replaced(
    app: App, client: Client, channel: grpc.aio.Channel
) -> None:
    """Defect 2: every RPC answers UNAVAILABLE (never INTERNAL) when
    PostgreSQL drops its connections, and the next call is served."""
    await subscribe(client, "t", {"seo": 100})
    recorded = await consume(client, "t", "seo")
    database = make_url(app.settings.database_url).database

    async def terminate_all() -> None:
        admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await admin.close()

    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "GetUsage": lambda: client.usage.GetUsage(
            usage_pb2.GetUsageRequest(tenant_id="t"), metadata=client.auth
        ),
        "RefundUsage": lambda: client.usage.RefundUsage(
            usage_pb2.RefundUsageRequest(usage_event_id=recorded.usage_event_id),
            metadata=client.auth,
        ),
        "ConsumeQuota": lambda: consume(client, "t", "seo"),
        "CheckQuota": lambda: client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(tenant_id="t", primitive="seo"), metadata=client.auth
        ),
    }
    for name, call in calls.items():
        await terminate_all()
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.UNAVAILABLE, (name, error)
        await call()  # served again at once, on a new connection


async def test_one_bad_call_fails_alone(app: App, clock: FixedClock) -> None:
    """Defect 3: a call whose instant has no period (year 1 under an anchored
    subscription) fails alone; the other operator's calls batched with it
    succeed, and the worker goes on."""
    good = (await app.store.create_operator("acme", clock.now())).id
    bad = (await app.store.create_operator("globex", clock.now())).id
    for op in (good, bad):
        await _plan(app, op, 1000)
        anchor = datetime(2026, 6, 20, tzinfo=UTC)
        await app.subscriptions.set(
            op, Owner.user("t"), "p", SubscriptionStatus.ACTIVE, "", "", anchor, False
        )
    batch = batcher(app, company=4)
    now = clock.now()
    try:
        calls = [Call(Kind.CONSUME, UsageKey(good, "t", "seo"), 1, now, now) for _ in range(3)]
        year_one = datetime(1, 1, 1, tzinfo=UTC)
        calls.insert(1, Call(Kind.RECORD, UsageKey(bad, "t", "seo"), 1, year_one, now))
        results = await asyncio.gather(*(batch.write(c) for c in calls), return_exceptions=True)
        assert [type(r).__name__ for r in results] == [
            "UsageRecorded",
            "InvalidArgument",
            "UsageRecorded",
            "UsageRecorded",
        ]
        assert (await batch.write(calls[0])).standing.used == 4  # the worker goes on
    finally:
        await batch.close()


async def test_an_overflowing_terms_cache_fails_no_call(app: App, clock: FixedClock) -> None:
    """Defect 4: past the cache's size, a tenant cached before is served."""
    op = (await app.store.create_operator("acme", clock.now())).id
    await _plan(app, op, 5)
    await app.subscriptions.set(
        op, Owner.user("t0"), "p", SubscriptionStatus.ACTIVE, "", "", None, False
    )
    batch = batcher(app, max_tenants=8)
    engine = QuotaEngine(app.store, batch, clock)
    try:
        assert (await engine.check(op, Owner.user("t0"), "seo", 1)).allowed
        await asyncio.gather(*(engine.check(op, Owner.user(f"x{i}"), "seo", 1) for i in range(100)))
        await engine.consume(op, Owner.user("t0"), "seo", 5, "")
        decision = await engine.check(op, Owner.user("t0"), "seo", 1)
        assert not decision.allowed and decision.standing.limit == micro(5)
    finally:
        await batch.close()
