"""h2load as the load generator: unary gRPC calls over h2c, written in C.

h2load sends one request body per process, the same for every request, so a
load is one h2load process per body, started together and measured over the
same duration; their counts, rates and per-request latencies (from
--log-file) are added up.

h2load judges a response by its HTTP status, and gRPC answers errors with HTTP
200 and a grpc-status trailer; an error carries no message though, so the
response DATA bytes h2load counts tell how many calls answered a message.
Callers check those, and what the server recorded, against h2load's counts.
"""

import math
import re
import resource
import shutil
import statistics
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "apt-get install -y nghttp2-client  (Debian/Ubuntu; the package ships h2load)"


def require_h2load() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit(f"h2load is not installed; install it with:\n  {INSTALL_HINT}")
    return path


def h2load_version() -> str:
    done = subprocess.run(
        [require_h2load(), "--version"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag 0, 4-byte big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


@dataclass(frozen=True, slots=True)
class Layout:
    """How `concurrency` concurrent streams are split among h2load processes."""

    processes: int
    connections: int  # per process
    streams: int  # concurrent streams per connection

    @property
    def concurrency(self) -> int:
        return self.processes * self.connections * self.streams

    def describe(self) -> str:
        return f"{self.processes} x h2load -c {self.connections} -m {self.streams}"


def multiplexed(concurrency: int) -> Layout:
    """One process; about sqrt(concurrency) connections of as many streams each
    (16 = 4 x 4, 64 = 8 x 8): few HTTP/2 connections carrying many streams, as
    from a sidecar proxy."""
    connections = math.isqrt(concurrency)
    while concurrency % connections:
        connections -= 1
    return Layout(1, connections, concurrency // connections)


def paced(concurrency: int) -> Layout:
    """For a fixed offered rate: the multiplexed layout's connections, each from
    its own process, so that their starts can be staggered and their sends
    interleave instead of leaving in bursts (16 = 4 x 1 x 4, 64 = 8 x 1 x 8)."""
    spread = multiplexed(concurrency)
    return Layout(spread.connections, 1, spread.streams)


def one_stream_per_process(concurrency: int) -> Layout:
    """One process, connection and stream per body: every stream in flight has
    its own body (its own tenant)."""
    return Layout(concurrency, 1, 1)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    body: Path  # a gRPC-framed request
    headers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests_per_second: float
    started: int
    succeeded: int
    unsuccessful: int  # h2load's failed + errored + timeout, and non-2xx
    data_bytes: int
    latencies_us: tuple[int, ...]
    client_cpu_seconds: float

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies_us) < 2:
            return float(self.latencies_us[0]) / 1000 if self.latencies_us else math.nan
        cuts = statistics.quantiles(self.latencies_us, n=100, method="inclusive")
        return cuts[percent - 1] / 1000


_FINISHED = re.compile(r"^finished in \S+, ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_TRAFFIC = re.compile(r"^traffic: .*\((\d+)\) data", re.M)


def run_load(
    targets: Sequence[Target],
    layout: Layout,
    duration_s: float,
    workdir: Path,
    offered_rate: float = 0,
) -> LoadResult:
    """Run one h2load process per target, each with `layout`'s connections and
    streams, for `duration_s`; return their sums.

    With `offered_rate` (req/s in all), the connections send at that rate
    (h2load --rps, per connection) with at most `layout.concurrency` calls in
    flight; without, each stream sends its next call when the last returns."""
    if len(targets) != layout.processes:
        raise ValueError(f"{len(targets)} targets for {layout.processes} processes")
    h2load = require_h2load()
    workdir.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    running: list[tuple[subprocess.Popen[str], Path, Path]] = []
    for index, target in enumerate(targets):
        log = workdir / f"h2load-{index}.tsv"
        output = workdir / f"h2load-{index}.out"
        log.unlink(missing_ok=True)  # h2load appends to an existing log
        command = [
            h2load,
            f"--duration={round(duration_s * 1000)}ms",
            f"--clients={layout.connections}",
            f"--max-concurrent-streams={layout.streams}",
            f"--data={target.body}",
            f"--log-file={log}",
            *(
                [f"--rps={offered_rate / (layout.processes * layout.connections):.6g}"]
                if offered_rate
                else []
            ),
            *(f"--header={header}" for header in target.headers),
            target.url,
        ]
        if offered_rate and running:
            # Stagger the processes' timers by one request interval each.
            time.sleep(layout.connections / offered_rate)
        with output.open("w") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, text=True)
        running.append((process, output, log))
    for process, _, _ in running:
        process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)

    rate = 0.0
    started = succeeded = unsuccessful = data_bytes = 0
    latencies: list[int] = []
    for process, output, log in running:
        text = output.read_text()
        finished, requests = _FINISHED.search(text), _REQUESTS.search(text)
        status, traffic = _STATUS.search(text), _TRAFFIC.search(text)
        if process.returncode != 0 or not (finished and requests and status and traffic):
            raise RuntimeError(f"h2load failed (exit {process.returncode}):\n{text[-2000:]}")
        rate += float(finished.group(1))
        started += int(requests.group(2))
        succeeded += int(requests.group(4))
        unsuccessful += sum(int(requests.group(i)) for i in (5, 6, 7))
        unsuccessful += sum(int(status.group(i)) for i in (2, 3, 4))
        data_bytes += int(traffic.group(1))
        for line in log.read_text().splitlines():
            _start, code, duration_us = line.split("\t")[:3]
            if code == "200":
                latencies.append(int(duration_us))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LoadResult(rate, started, succeeded, unsuccessful, data_bytes, tuple(latencies), cpu)
