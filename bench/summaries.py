"""Billing reads as a month fills: GetUsageSummary and GetUsageByProject
with EVENTS usage events in the current month (default 1,000,000).

For each backend, on a fresh database: the events of one organization are
bulk-inserted with one INSERT ... SELECT (generate_series on PostgreSQL, a
recursive CTE on SQLite), spread over five projects, three meters and the
month's days so far; the triggers of migration 0004 keep the daily
aggregates as the rows go in, as they do for the service's own writes. The
service is then started on that database and each read is called CALLS
times in a row by one gRPC client; the median and p99 latency are printed
as a Markdown table (docs/performance.md keeps them).

Usage: .venv/bin/python bench/summaries.py [--events N] [--calls N] [--backends sqlite,postgres]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from billing.v1 import billing_pb2, billing_pb2_grpc
from processes import database, postgres_available, start_billing
from seeding import create_operator_and_key
from sqlalchemy import text

from billing_service.storage.engine import create_engines

OWNER = "org/bench-org"
PROJECTS = 5
METERS = ("sandbox_compute_hours", "ai_tokens", "storage_gb")
DAY = 86_400_000_000
TRIGGER = "usage_daily_on_insert"
AGGREGATE = f"""
INSERT INTO usage_daily (operator_id, tenant_id, project_id, primitive, day, total, peak,
                         last_value, last_at, last_id, events)
SELECT operator_id, tenant_id, project_id, primitive, occurred_at / {DAY}, SUM(quantity),
       MAX(quantity), MAX(quantity), MAX(occurred_at), MAX(id), COUNT(*)
FROM usage_events GROUP BY operator_id, tenant_id, project_id, primitive, occurred_at / {DAY}
"""


def _seed_sql(backend: str, events: int, first_day: int, days: int) -> str:
    rows = (
        "SELECT 1, '{owner}', CASE n % 3 WHEN 0 THEN '{m0}' WHEN 1 THEN '{m1}' ELSE '{m2}' END,"
        " 1000000 + n % 7, {first} + (n % {days}) * {day} + n % {day}, 0, 0, 0, 1,"
        " 'p' || CAST(n % {projects} AS TEXT) FROM {source}"
    )
    if backend == "postgres":
        source = f"generate_series(1, {events}) AS g(n)"
        prefix = ""
    else:
        source = "s"
        prefix = (
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {events}) "
        )
    select = rows.format(
        owner=OWNER,
        m0=METERS[0],
        m1=METERS[1],
        m2=METERS[2],
        first=first_day * DAY,
        days=days,
        day=DAY,
        projects=PROJECTS,
        source=source,
    )
    return (
        f"{prefix}INSERT INTO usage_events (operator_id, tenant_id, primitive, quantity,"
        " occurred_at, recorded_at, used_after, window_start, window_end, project_id) " + select
    )


async def _seed(url: str, backend: str, events: int, now: datetime) -> float:
    writer, reader = create_engines(url)
    first_day = int(datetime(now.year, now.month, 1, tzinfo=UTC).timestamp()) // 86_400
    days = max(now.day - 1, 1)
    started = time.monotonic()
    try:
        async with writer.begin() as conn:
            for index in range(PROJECTS):
                await conn.execute(
                    text(
                        "INSERT INTO projects (operator_id, id, owner, name, created_at,"
                        " updated_at) VALUES (1, :id, :owner, :name, 0, 0)"
                    ),
                    {"id": f"p{index}", "owner": OWNER, "name": f"Project {index}"},
                )
            if backend == "postgres":
                # One transaction updating the same aggregate rows a million
                # times would keep every row version (the service writes at
                # most a batch per transaction): the aggregates are built once
                # from the events instead (the same rows; the latest reading
                # taken as the largest, which times the same).
                await conn.execute(text(f"ALTER TABLE usage_events DISABLE TRIGGER {TRIGGER}"))
                await conn.execute(text(_seed_sql(backend, events, first_day, days)))
                await conn.execute(text(f"ALTER TABLE usage_events ENABLE TRIGGER {TRIGGER}"))
                await conn.execute(text(AGGREGATE))
            else:
                await conn.execute(text(_seed_sql(backend, events, first_day, days)))
    finally:
        await writer.dispose()
        await reader.dispose()
    return time.monotonic() - started


def _latencies(call: Any, request: object, metadata: Any, calls: int) -> list[float]:
    for _ in range(10):
        call(request, metadata=metadata, timeout=30)
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        call(request, metadata=metadata, timeout=30)
        took.append((time.perf_counter() - started) * 1000)
    return took


def measure(backend: str, events: int, calls: int) -> list[str]:
    now = datetime.now(UTC)
    rows = []
    with tempfile.TemporaryDirectory() as scratch, database(backend, Path(scratch)) as url:
        key = create_operator_and_key(url)
        seconds = asyncio.run(_seed(url, backend, events, now))
        print(f"{backend}: {events:,} events seeded in {seconds:.0f} s", flush=True)
        server = start_billing(url, Path(scratch) / "service.log")
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = billing_pb2_grpc.BillingServiceStub(channel)
                metadata = (("authorization", f"Bearer {key}"),)
                org = OWNER.removeprefix("org/")
                for name, call, request in (
                    (
                        "GetUsageSummary",
                        stub.GetUsageSummary,
                        billing_pb2.GetUsageSummaryRequest(
                            organization_id=org, year=now.year, month=now.month
                        ),
                    ),
                    (
                        "GetUsageByProject",
                        stub.GetUsageByProject,
                        billing_pb2.GetUsageByProjectRequest(
                            organization_id=org, year=now.year, month=now.month
                        ),
                    ),
                ):
                    took = sorted(_latencies(call, request, metadata, calls))
                    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
                    rows.append(
                        f"| {name} | {backend} | {events:,} | {statistics.median(took):.2f}"
                        f" | {p99:.2f} |"
                    )
        finally:
            server.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    if "postgres" in backends and not postgres_available():
        raise SystemExit("PostgreSQL is not reachable; try --backends sqlite")
    table = [
        "| read | backend | events in the month | median ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for backend in backends:
        table += measure(backend, args.events, args.calls)
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
