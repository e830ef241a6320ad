"""How fast each database answers on its own, measured before the matrix.

At c=1 a ConsumeQuota waits for its commit, so its ratio of the floor cannot
beat floor latency / (floor latency + commit) whatever the service does; the
commit's cost is the machine's (its disk's flush, its scheduler), and differs
severalfold between machines of the same size. Written with the machine's
facts so that the ratios of two runs can be read against each other.

- PostgreSQL, as the service's hot path talks to it (asyncpg, prepared
  statements, autocommit): a read round trip (`SELECT 1`) and a one-row
  INSERT's commit, on a throwaway database.
- SQLite, on the service's pragmas (WAL, synchronous=NORMAL: a commit writes
  the WAL but does not flush it): a one-row INSERT's commit.
"""

import asyncio
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
from processes import postgres_database
from sqlalchemy.engine import make_url

# The statements timed here, which the database floors (floor_server.py) await per call.
POSTGRES_PROBE_TABLE = "CREATE TABLE IF NOT EXISTS probe (id bigserial PRIMARY KEY, v bigint)"
POSTGRES_STATEMENTS = {"read": "SELECT 1", "commit": "INSERT INTO probe (v) VALUES (1)"}

_WARMUP = 200
_SAMPLES = 1000


def asyncpg_dsn(url: str) -> str:
    """An SQLAlchemy URL (postgresql+asyncpg://...) as asyncpg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _median_us(samples: Sequence[float]) -> float:
    """The median after the warm-up, in microseconds."""
    return statistics.median(samples[_WARMUP:]) * 1e6


def _tail_ms(samples: Sequence[float]) -> tuple[float, float]:
    """The 99th percentile and the slowest after the warm-up, in milliseconds:
    a disk that stalls now and then shows here first (a commit waits for its
    flush), and in the p99 of every write at a fixed rate."""
    measured = sorted(samples[_WARMUP:])
    return measured[int(len(measured) * 0.99)] * 1e3, measured[-1] * 1e3


def _sqlite_commit_us(directory: Path) -> float:
    path = directory / "latency-probe.db"
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: a transaction per INSERT
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, v INTEGER)")
        return _median_us(_timed(lambda: conn.execute("INSERT INTO probe (v) VALUES (1)")))
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _timed(call: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(_WARMUP + _SAMPLES):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


async def _postgres_samples(url: str) -> tuple[list[float], list[float]]:
    """(read round trips, one-row commits), in seconds, warm-up first."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(POSTGRES_PROBE_TABLE)
        results = []
        for statement in (POSTGRES_STATEMENTS["read"], POSTGRES_STATEMENTS["commit"]):
            prepared = await conn.prepare(statement)
            samples = []
            for _ in range(_WARMUP + _SAMPLES):
                started = time.perf_counter()
                await prepared.fetch()
                samples.append(time.perf_counter() - started)
            results.append(samples)
        return results[0], results[1]
    finally:
        await conn.close()


def database_lines(backends: Sequence[str], scratch: Path, when: str = "") -> list[str]:
    """The machine's lines on its databases' own latency, unloaded (`when`:
    a label for a second measurement, e.g. after the matrix)."""
    lines = []
    label = f" ({when})" if when else ""
    if "sqlite" in backends:
        lines.append(
            f"- SQLite on its own{label}: a one-row commit {_sqlite_commit_us(scratch):.0f} us "
            "(WAL, synchronous=NORMAL; median, unloaded)"
        )
    if "postgres" in backends:
        with postgres_database() as url:
            reads, commits = asyncio.run(_postgres_samples(url))
        p99, slowest = _tail_ms(commits)
        lines.append(
            f"- PostgreSQL on its own{label}: a read round trip {_median_us(reads):.0f} us, a "
            f"one-row commit {_median_us(commits):.0f} us (medians; the commit's p99 "
            f"{p99:.1f} ms, slowest of {_SAMPLES:,} {slowest:.1f} ms; asyncpg, autocommit, "
            "unloaded)"
        )
    return lines
