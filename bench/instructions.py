"""Instructions per call: the hot path counted by callgrind instead of timed.

On a shared machine req/s moves by 10-20% from one run to the next, more than
most changes to the service are worth; the instructions a call executes do
not. Each server runs under `valgrind --tool=callgrind` with instrumentation
off until it has served a warm-up, then h2load sends `--calls` calls one at a
time (`-c 1 -m 1`) while callgrind counts every instruction the process
executes in user space (all its threads: the event loop's, gRPC's poller),
and the count is divided by the calls. Kernel time is not counted: waiting
for the database costs nothing here, however long it takes.

The servers run as the matrix's do (bench/run.py), with one process
(`BILLING_WORKERS=1`) and the API key's lookup cached for the whole run. The
service is seeded as for the matrix, started, then started again under
valgrind on the same database.

To compare revisions, run this once with each (`BENCH_BILLING_CLI`, as for
run.py), and compare run with run: a scenario's first run repeated to within
0.3% from one invocation to the next (2026-12-01), while a check's second run
counted 6-8% more than its first (the floor's and ConsumeQuota's within 0.4%):
parts of the check's path go by the clock (the batch worker's patience, the
WAL checkpointer's thread), which valgrind slows. So does the way a lone
check takes on PostgreSQL: it reads in its caller's coroutine unless the
patience's probe is due (every 10 ms); under valgrind, where a call takes
milliseconds, the probe is due at nearly every call, so such a check is
counted the batch worker's way.

Usage: .venv/bin/python bench/instructions.py [--calls 2000] [--runs 2] [--backends sqlite,postgres]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadgen import Target, require_h2load
from processes import (
    BENCH_DIR,
    ServerProcess,
    postgres_available,
    postgres_database,
    service_grpc_experiments,
    start_floor,
)
from report import BACKENDS
from run import seeded_backend
from scenarios import (
    CHECK,
    CONSUME_HOT,
    FLOOR_AS_SERVICE,
    FLOOR_POSTGRES_COMMIT,
    FLOOR_POSTGRES_READ,
    floor_target,
)
from seeding import CHECK_PATH, CONSUME_PATH, HOT_TENANT, check_request, consume_request

WARMUP_CALLS = 300


@dataclass(frozen=True, slots=True)
class Count:
    scenario: str
    backend: str
    per_call: tuple[float, ...]  # one per run

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)


def callgrind_launcher(out: Path) -> list[str]:
    # --trace-children: BENCH_BILLING_CLI may be a shell wrapper that execs Python.
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        f"--callgrind-out-file={out}/callgrind.%p",
    ]


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _h2load(target: Target, calls: int) -> None:
    command = [
        require_h2load(),
        f"--requests={calls}",
        "--clients=1",
        "--max-concurrent-streams=1",
        f"--data={target.body}",
        *(f"--header={header}" for header in target.headers),
        target.url,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or f"{calls} succeeded" not in done.stdout:
        raise RuntimeError(f"h2load did not complete {calls} calls:\n{done.stdout[-2000:]}")


def count_calls(
    server: ServerProcess, target: Target, calls: int, runs: int, out: Path
) -> list[float]:
    """Instructions per call of `server` (running under callgrind_launcher(out))
    over `calls` calls, once per run, after a warm-up."""
    pid = str(server.process.pid)
    _h2load(target, WARMUP_CALLS)
    counts = []
    for _ in range(runs):
        before = set(out.glob(f"callgrind.{pid}*"))
        _control("--instr=on", pid)
        _control("--zero", pid)
        _h2load(target, calls)
        _control("--dump", pid)
        _control("--instr=off", pid)
        counts.append(_dumped_total(out, pid, before) / calls)
    return counts


def _dumped_total(out: Path, pid: str, before: set[Path]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for dump in set(out.glob(f"callgrind.{pid}*")) - before:
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump for process {pid} in {out}")


@contextmanager
def _stopping(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        yield server
    finally:
        server.stop()


def measure(backends: Sequence[str], calls: int, runs: int, out: Path) -> list[Count]:
    """The floor on the service's settings, then per backend (on PostgreSQL
    after the database floors) CheckQuota and ConsumeQuota on the hot tenant."""
    counts: list[Count] = []
    launcher = callgrind_launcher(out)
    experiments = service_grpc_experiments()
    like = check_request(HOT_TENANT).SerializeToString()

    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as scratch_name:
        scratch = Path(scratch_name)

        def record(scenario: str, backend: str, server: ServerProcess, target: Target) -> None:
            per_call = count_calls(server, target, calls, runs, out)
            counts.append(Count(scenario, backend, tuple(per_call)))
            print(f"  {scenario} ({backend}): {statistics.median(per_call):,.0f}", flush=True)

        def record_floor(scenario: str, backend: str, postgres: tuple[str, str] | None) -> None:
            with _stopping(start_floor(out, experiments, postgres, launcher)) as floor:
                target = floor_target(floor, scratch / "bodies", like, None)
                record(scenario, backend, floor, target)

        record_floor(FLOOR_AS_SERVICE, "-", None)
        for backend in backends:
            if backend == "postgres":
                with postgres_database() as url:
                    record_floor(FLOOR_POSTGRES_READ, backend, (url, "read"))
                    record_floor(FLOOR_POSTGRES_COMMIT, backend, (url, "commit"))
            with seeded_backend(backend, out, scratch) as service:
                service.restart(launcher)
                for scenario, path, body, message in (
                    (CHECK, CHECK_PATH, "check", check_request(HOT_TENANT)),
                    (CONSUME_HOT, CONSUME_PATH, "consume", consume_request(HOT_TENANT)),
                ):
                    target = service.target(path, body, message.SerializeToString())
                    record(scenario, backend, service.server, target)
    return counts


def table(counts: Sequence[Count]) -> str:
    floor = next((c.median for c in counts if c.scenario == FLOOR_AS_SERVICE), None)
    lines = [
        "| scenario | backend | instructions per call | runs | of the floor |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for c in counts:
        runs = " / ".join(f"{value:,.0f}" for value in c.per_call)
        ratio = f"{c.median / floor:.2f}" if floor else "-"
        lines.append(f"| {c.scenario} | {c.backend} | {c.median:,.0f} | {runs} | {ratio} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls counted per run")
    parser.add_argument("--runs", type=int, default=2, help="counts per scenario")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="logs and dumps")
    args = parser.parse_args(argv)
    backends = [name for name in args.backends.split(",") if name]
    if set(backends) - set(BACKENDS):
        parser.error(f"unknown backends: {args.backends}")
    if "postgres" in backends and not postgres_available():
        parser.error("PostgreSQL is not reachable (BENCH_POSTGRES_URL)")
    out = args.out / time.strftime("instructions-%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    # One process, the key looked up once (module docstring).
    os.environ.update(BILLING_WORKERS="1", BILLING_AUTH_CACHE_SECONDS="86400")
    started = time.monotonic()
    counts = measure(backends, args.calls, args.runs, out)
    print()
    print(table(counts))
    took = time.monotonic() - started
    print(f"\n({args.calls:,} calls per run, c=1; dumps in {out}; took {took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
