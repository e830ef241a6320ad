"""History scaling: does the hot path slow down as stored data grows?

For each backend and each (usage events, tenants) pair of the grid (default
1,000 and 1,000,000 events x 10 and 100,000 tenants), on a fresh database:
the plan is made through the API, then tenants (subscriptions rows) and usage
events are bulk-inserted with one INSERT ... SELECT each (generate_series on
PostgreSQL, a recursive CTE on SQLite), most events in the 12 past monthly
periods and 5% in the current one, then checkpointed; the service is restarted
on that database and ConsumeQuota and CheckQuota, both on one tenant that has
history, are measured at concurrency 16, with the service's RSS before and after.
The table goes to bench/RESULTS.md and stdout. See bench/README.md.

Usage: .venv/bin/python bench/history.py [--quick] [--runs N] [--backends sqlite,postgres]
                                         [--events 1000,1000000] [--tenants 10,100000]
"""

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from loadgen import multiplexed, require_h2load
from processes import database, postgres_available
from report import add_common_arguments, common_of, fmt, machine_lines, markdown_table, publish
from scenarios import (
    CONSUME_HOT,
    Measurement,
    Summary,
    Timing,
    describe,
    measure_check,
    measure_consume,
    running_backend,
    summary_of,
    with_restart,
)
from seeding import HUGE_QUOTA, OPERATOR, PLAN_KEY, PRIMITIVE, create_operator_and_key, tenant_name
from sqlalchemy import BigInteger, MetaData, String, cast, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from billing_service.domain.models import Period, Window
from billing_service.domain.periods import window_at

CONCURRENCY = 16
PAST_PERIODS = 12
CURRENT_PERIOD_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class Size:
    events: int
    tenants: int


@dataclass(frozen=True, slots=True)
class Outcome:
    backend: str
    size: Size
    seed_seconds: float
    database_mib: float
    rss_start_mib: float
    rss_after_mib: float
    consume: Summary
    check: Summary


def _numbers(dialect: str, count: int) -> Any:
    """A FROM clause of the integers 1..count in a column `n`."""
    if dialect == "postgresql":
        return func.generate_series(1, count).table_valued("n").render_derived("numbers")
    numbers = select(literal(1).label("n")).cte("numbers", recursive=True)
    return numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < count))


def _monthly_windows(now: datetime) -> list[Window]:
    """The current calendar month (the plan's period, no anchor) and the
    PAST_PERIODS before it, newest first."""
    windows = [window_at(Period.MONTH, None, now)]
    for _ in range(PAST_PERIODS):
        windows.append(window_at(Period.MONTH, None, windows[-1].start - timedelta(microseconds=1)))
    return windows


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


async def _seed(conn: AsyncConnection, size: Size, now: datetime) -> None:
    meta = MetaData()
    await conn.run_sync(
        lambda sync: meta.reflect(sync, only=["operators", "subscriptions", "usage_events"])
    )
    operators, subscriptions = meta.tables["operators"], meta.tables["subscriptions"]
    usage_events = meta.tables["usage_events"]
    dialect = conn.dialect.name
    operator_id = (
        await conn.execute(select(operators.c.id).where(operators.c.name == OPERATOR))
    ).scalar_one()

    def big(value: int) -> Any:
        return literal(value, BigInteger)

    def tenant(index: Any) -> Any:
        # tenant_name(index % tenants), in SQL
        return literal("tenant-") + cast(index % size.tenants, String)

    numbers = _numbers(dialect, size.tenants)
    stamp = big(_micros(now))
    await conn.execute(
        insert(subscriptions).from_select(
            ["operator_id", "tenant_id", "plan_key", "status", "created_at", "updated_at"],
            select(
                big(operator_id),
                tenant(numbers.c.n),
                literal(PLAN_KEY),
                literal("active"),
                stamp,
                stamp,
            ),
        )
    )
    current = max(1, round(size.events * CURRENT_PERIOD_SHARE))
    past = size.events - current
    windows = _monthly_windows(now)
    counts = [current] + [
        past // PAST_PERIODS + (1 if month < past % PAST_PERIODS else 0)
        for month in range(PAST_PERIODS)
    ]
    # Event i (counted across periods) belongs to tenant i % tenants: every
    # tenant has history, in every period when there are enough events.
    first_index = 0
    for window, count in zip(windows, counts, strict=True):
        if count == 0:
            continue
        start, end = _micros(window.start), _micros(min(window.end, now))
        spacing = max(1, (end - start) // count)
        numbers = _numbers(dialect, count)
        index = numbers.c.n - 1 + first_index
        first_index += count
        occurred = big(start) + (numbers.c.n - 1) * big(spacing)
        await conn.execute(
            insert(usage_events).from_select(
                [
                    "operator_id",
                    "tenant_id",
                    "primitive",
                    "quantity",
                    "occurred_at",
                    "recorded_at",
                    "used_after",
                    "quota_limit",
                    "window_start",
                    "window_end",
                    "plan_key",
                ],
                select(
                    big(operator_id),
                    tenant(index),
                    literal(PRIMITIVE),
                    big(1),
                    occurred,
                    occurred,
                    index // size.tenants + 1,  # the tenant's running count
                    big(HUGE_QUOTA),
                    big(start),
                    big(_micros(window.end)),
                    literal(PLAN_KEY),
                ),
            )
        )


async def _seed_and_measure_size(url: str, size: Size) -> float:
    """Bulk-insert the tenants and history; return the database's size in MiB."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await _seed(conn, size, datetime.now(UTC))
        # Write the bulk load out now, not during the measurements.
        if engine.dialect.name != "postgresql":
            async with engine.connect() as conn:
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                pages = (await conn.execute(text("PRAGMA page_count"))).scalar_one()
                page_size = (await conn.execute(text("PRAGMA page_size"))).scalar_one()
                return float(pages * page_size) / 2**20
        # What autovacuum would soon do to tables this size; without it the
        # planner would be guessing.
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE subscriptions"))
            await autocommit.execute(text("VACUUM ANALYZE usage_events"))
            await autocommit.execute(text("CHECKPOINT"))
            query = text("SELECT pg_database_size(current_database())")
            return float((await autocommit.execute(query)).scalar_one()) / 2**20
    finally:
        await engine.dispose()


@dataclass
class Settings:
    runs: int
    timing: Timing
    backends: list[str]
    sizes: list[Size]
    results: Path
    out: Path


def measure(backend_name: str, size: Size, settings: Settings, scratch: Path) -> Outcome:
    log = settings.out / f"billing-{backend_name}-{size.events}-{size.tenants}.log"
    bodies = scratch / "bodies"
    with database(backend_name, scratch) as url:
        api_key = create_operator_and_key(url)
        with running_backend(backend_name, url, api_key, log, bodies) as backend:
            backend.client.upsert_plan()
        # Seed with the service stopped, and measure a service started on the
        # big database, as after a deploy: no cache of the service can be stale.
        started = time.monotonic()
        database_mib = asyncio.run(_seed_and_measure_size(url, size))
        seed_seconds = time.monotonic() - started
        print(
            f"  {backend_name}: seeded {size.events:,} events, {size.tenants:,} tenants "
            f"in {seed_seconds:.1f} s ({database_mib:.0f} MiB)",
            flush=True,
        )
        with running_backend(backend_name, url, api_key, log, bodies) as backend:
            rss_start = backend.server.rss_mib()
            # One tenant with history, the same client layout for both RPCs and
            # in every configuration: rows differ only by what is stored.
            tenant = tenant_name(0)
            consumes: list[Measurement] = []
            checks: list[Measurement] = []
            for run in range(1, settings.runs + 1):
                timing = settings.timing
                consume = with_restart(
                    backend,
                    partial(
                        measure_consume, backend, CONSUME_HOT, [tenant], CONCURRENCY, run, timing
                    ),
                )
                check = with_restart(
                    backend, partial(measure_check, backend, tenant, CONCURRENCY, run, timing)
                )
                for measurement, kept in ((consume, consumes), (check, checks)):
                    kept.append(measurement)
                    print("    " + describe(measurement), flush=True)
            rss_after = backend.server.rss_mib()
    return Outcome(
        backend_name,
        size,
        seed_seconds,
        database_mib,
        rss_start,
        rss_after,
        summary_of(consumes),
        summary_of(checks),
    )


def render(outcomes: Sequence[Outcome], settings: Settings, machine: list[str]) -> str:
    smallest: dict[tuple[str, str], float] = {}
    rows = []
    for outcome in outcomes:
        for summary in (outcome.consume, outcome.check):
            key = (outcome.backend, summary.cell.scenario)
            baseline = smallest.setdefault(key, summary.requests_per_second)
            rows.append(
                [
                    outcome.backend,
                    f"{outcome.size.events:,}",
                    f"{outcome.size.tenants:,}",
                    "ConsumeQuota" if summary.cell.scenario == CONSUME_HOT else "CheckQuota",
                    fmt(summary.requests_per_second, 0),
                    fmt(summary.requests_per_second / baseline, 2),
                    fmt(summary.p50_ms, 2),
                    fmt(summary.p99_ms, 2),
                    fmt(summary.service_cpu_us_per_request, 0),
                    fmt(outcome.rss_after_mib, 0),
                ]
            )
    seeding = [
        [
            o.backend,
            f"{o.size.events:,}",
            f"{o.size.tenants:,}",
            fmt(o.seed_seconds, 1),
            fmt(o.database_mib, 1),
            fmt(o.rss_start_mib, 0),
            fmt(o.rss_after_mib, 0),
        ]
        for o in outcomes
    ]
    problems = [
        f"- {o.backend} {o.size.events:,} events {o.size.tenants:,} tenants {s.cell.scenario}, {p}"
        for o in outcomes
        for s in (o.consume, o.check)
        for p in s.problems
    ]
    parts = [
        "## History scaling: stored usage events and tenants",
        "",
        *machine,
        f"- Concurrency {CONCURRENCY}; medians of {settings.runs} run(s) of "
        f"{settings.timing.duration_s:g} s after a {settings.timing.warmup_s:g} s warm-up; "
        f"a fresh database per row, seeded with SQL, the service started on it afterwards",
        f"- ConsumeQuota and CheckQuota: `{multiplexed(CONCURRENCY).describe()}`, all on "
        "`tenant-0`, which has history in every period",
        "",
        markdown_table(
            [
                "backend",
                "usage events",
                "tenants",
                "RPC",
                "req/s",
                "vs first row",
                "p50 ms",
                "p99 ms",
                "service CPU us/req",
                "service RSS after, MiB",
            ],
            rows,
        ),
        "",
        "vs first row: req/s over the same RPC's on the same backend in the smallest "
        "configuration (first rows). Service CPU and RSS: the service process only.",
        "",
        markdown_table(
            [
                "backend",
                "usage events",
                "tenants",
                "seeding s",
                "database MiB",
                "service RSS at start, MiB",
                "after the runs, MiB",
            ],
            seeding,
        ),
        "",
        "### Checks",
        "",
        *(
            problems
            or [
                "Every call h2load counted was a gRPC success (response bytes and GetUsage "
                "counts agree with h2load's counts)."
            ]
        ),
    ]
    return "\n".join(parts)


def _integers(text_value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text_value.split(",") if part]


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, "RPC")
    parser.add_argument("--events", default="1000,1000000", help="usage events to store")
    parser.add_argument("--tenants", default="10,100000", help="tenants to subscribe")
    args = parser.parse_args(argv)
    common = common_of(parser, args, "history")
    return Settings(
        runs=common.runs,
        timing=common.timing,
        backends=common.backends,
        sizes=[
            Size(events, tenants)
            for tenants, events in itertools.product(
                _integers(args.tenants), _integers(args.events)
            )
        ],
        results=common.results,
        out=common.out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    require_h2load()
    if "postgres" in settings.backends and not postgres_available():
        raise SystemExit("PostgreSQL is not reachable (BENCH_POSTGRES_URL); try --backends sqlite")
    settings.out.mkdir(parents=True, exist_ok=True)
    machine = machine_lines(settings.backends)
    print("\n".join(machine), flush=True)
    started = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as scratch:
        for backend in settings.backends:
            for size in settings.sizes:
                outcomes.append(measure(backend, size, settings, Path(scratch)))
    report = render(outcomes, settings, machine)
    publish(
        "history",
        report,
        settings.results,
        settings.out,
        "outcomes.json",
        [asdict(o) for o in outcomes],
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
