"""What the reports say about the machine, and how they are written down."""

import argparse
import asyncio
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from loadgen import h2load_version
from processes import BENCH_DIR, BILLING_CLI, POSTGRES_ADMIN_URL
from scenarios import Timing
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

RESULTS = BENCH_DIR / "RESULTS.md"
_TITLE = (
    "# Benchmark results\n\n"
    "Written by `bench/run.py` (the matrix) and `bench/history.py` (history scaling); "
    "see `bench/README.md` for what each scenario is and how it is measured.\n"
)


BACKENDS = ("sqlite", "postgres")
# Backends run only when asked for: PostgreSQL through PgBouncer in transaction
# mode (bench/run.py --backends ...,pgbouncer; `make test-tools` installs it).
OPTIONAL_BACKENDS = ("pgbouncer",)


@dataclass(frozen=True)
class Common:
    """What every bench command is told: how often and how long to measure,
    on which backends, and where to write."""

    runs: int
    timing: Timing
    backends: list[str]
    results: Path
    out: Path


def add_common_arguments(parser: argparse.ArgumentParser, measured: str) -> None:
    """The options every bench command takes; `measured`: what each measurement is of."""
    parser.add_argument("--quick", action="store_true", help="1 run of 2 s each: a smoke run")
    parser.add_argument("--runs", type=int, help="runs to take the median of (default 3)")
    parser.add_argument(
        "--duration", type=float, help=f"seconds measured per {measured} (default 5)"
    )
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each (default 1)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="logs and raw results")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="the markdown file to write the table to"
    )


def common_of(parser: argparse.ArgumentParser, args: argparse.Namespace, run_name: str) -> Common:
    """The common options as given (add_common_arguments); the logs of this
    run go to a folder `run_name`-<date>-<time> under --out."""
    backends = [name for name in args.backends.split(",") if name]
    unknown = set(backends) - set(BACKENDS) - set(OPTIONAL_BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    out = args.out / time.strftime(f"{run_name}-%Y%m%d-%H%M%S")
    return Common(
        runs=args.runs or (1 if args.quick else 3),
        timing=Timing(
            args.duration or (2.0 if args.quick else 5.0),
            args.warmup or (0.5 if args.quick else 1.0),
            out / "h2load",
        ),
        backends=backends,
        results=args.results,
        out=out,
    )


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def _memory_gib() -> float:
    meminfo = Path("/proc/meminfo").read_text()
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    return int(match.group(1)) / 1024**2 if match else float("nan")


def _postgres_version() -> str:
    async def query() -> str:
        engine = create_async_engine(POSTGRES_ADMIN_URL)
        try:
            async with engine.connect() as conn:
                return str((await conn.execute(text("SHOW server_version"))).scalar_one())
        finally:
            await engine.dispose()

    try:
        return asyncio.run(query())
    except Exception as error:
        return f"unavailable ({type(error).__name__})"


def _service_revision() -> str:
    # The service changes under the benchmark: say which code was measured,
    # "-dirty" when the service's code differs from that commit (not when
    # only the bench or its results do).
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=BENCH_DIR.parent, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    edited = git("status", "--porcelain", "--", "service", "generated", "pyproject.toml")
    return commit + ("-dirty" if edited else "")


def machine_lines(backends: Sequence[str]) -> list[str]:
    load1, load5, _ = os.getloadavg()
    lines = [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"{_cpu_model()}, {_memory_gib():.0f} GiB RAM",
        f"- Load average when the run started: {load1:.2f} (1 min), {load5:.2f} (5 min)",
        # Which interpreter: a build with PGO and LTO or without one changes CPU per call.
        f"- Python {platform.python_version()} (`{os.path.realpath(sys.executable)}`), "
        f"grpcio {grpc.__version__}, uvloop event loop",
        f"- Load generator: {h2load_version()}",
    ]
    if "BENCH_BILLING_CLI" in os.environ:
        lines.append(f"- Service: `{BILLING_CLI}` (BENCH_BILLING_CLI)")
    else:
        lines.append(f"- Service: this checkout at {_service_revision()}")
    if "sqlite" in backends:
        lines.append(f"- SQLite {sqlite3.sqlite_version}")
    if "postgres" in backends:
        lines.append(f"- PostgreSQL {_postgres_version()} on 127.0.0.1")
    if "pgbouncer" in backends:
        version = subprocess.run(
            ["/usr/sbin/pgbouncer", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        lines.append(
            f"- pgbouncer: {version[0] if version else 'PgBouncer'} in pool_mode=transaction"
            " (4 server connections) before the same PostgreSQL, BILLING_DATABASE_POOLER's"
            " statements (statement_cache_size=0)"
        )
    return lines


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    aligns = ["---" if index == 0 else "---:" for index in range(len(header))]
    return "\n".join([line(header), line(aligns), *(line(row) for row in rows)])


def write_section(name: str, content: str, path: Path = RESULTS) -> None:
    """Replace the section `name` of the results file (or append it), leaving
    the other sections, which other commands write, as they are."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{content.strip()}\n{end}"
    existing = path.read_text() if path.exists() else _TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(existing):
        updated = pattern.sub(lambda _match: block, existing)
    else:
        updated = existing.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")


def publish(
    name: str, report: str, results: Path, out: Path, raw_name: str, raw: object, started: float
) -> None:
    """Write the report as section `name` of the results file, the raw
    figures as JSON beside the logs, and print the report."""
    write_section(name, report, results)
    (out / raw_name).write_text(json.dumps(raw, indent=1))
    print()
    print(report)
    print(f"\n(wrote {results} and {out}; took {time.monotonic() - started:.0f} s)")


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"
