"""The measured scenarios, each a warm-up and a measured h2load load, and the
checks that every call h2load counted was a gRPC success."""

import statistics
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from floor_server import PATH as FLOOR_PATH
from loadgen import (
    Layout,
    LoadResult,
    Target,
    grpc_frame,
    multiplexed,
    one_stream_per_process,
    paced,
    run_load,
)
from processes import ServerExited, ServerProcess, start_billing
from seeding import (
    CHECK_PATH,
    CONSUME_PATH,
    RATE_LIMIT_PATH,
    BillingClient,
    billing_target,
    check_request,
    consume_request,
    grpc_headers,
    rate_limit_request,
    write_body,
)

T = TypeVar("T")

FLOOR = "floor (empty RPC)"
FLOOR_PER_PROCESS = "floor, 1 stream per process"
# The same floors on the gRPC core settings the service sets for itself
# (billing_service/grpc_core.py): what the service costs over the stack it runs on.
FLOOR_AS_SERVICE = "floor, the service's settings"
FLOOR_PER_PROCESS_AS_SERVICE = "floor, 1 stream per process, the service's settings"
FLOORS = (FLOOR, FLOOR_PER_PROCESS, FLOOR_AS_SERVICE, FLOOR_PER_PROCESS_AS_SERVICE)
# The floor server on the service's settings that also awaits one PostgreSQL
# statement per call, at c=1: one call at a time on PostgreSQL waits for the
# database, and these say how far a design on the service's stack that waits
# for one read (a check) or one commit (a write) gets on this machine, as a
# ratio of the empty floor on gRPC's defaults, as the targets are.
FLOOR_POSTGRES_READ = "floor, the service's settings, + a PostgreSQL read"
FLOOR_POSTGRES_COMMIT = "floor, the service's settings, + a PostgreSQL commit"
DATABASE_FLOORS = {FLOOR_POSTGRES_READ: "read", FLOOR_POSTGRES_COMMIT: "commit"}
DATABASE_FLOOR_CONCURRENCY = 1
CHECK = "CheckQuota"
CONSUME_MANY = "ConsumeQuota, many tenants"
CONSUME_HOT = "ConsumeQuota, hot tenant"
# Envoy's rate-limit service on the hot tenant: the same decision as
# CONSUME_HOT, asked as a sidecar asks it.
RATE_LIMIT_HOT = "ShouldRateLimit, hot tenant"


def layout_of(scenario: str, concurrency: int, offered_rate: int = 0) -> Layout:
    """Many tenants need one h2load process per tenant, hence per stream; the
    rest use the multiplexed layout, which costs the client a third as much
    CPU. At a fixed rate, every scenario is paced (with one tenant per process
    for many tenants: below saturation a process rarely has two calls in flight)."""
    if offered_rate:
        return paced(concurrency)
    if scenario in (FLOOR_PER_PROCESS, FLOOR_PER_PROCESS_AS_SERVICE, CONSUME_MANY):
        return one_stream_per_process(concurrency)
    return multiplexed(concurrency)


def floor_of(scenario: str, concurrency: int, offered_rate: int = 0) -> str:
    """The floor a scenario is compared with: the one with the same client layout."""
    if layout_of(scenario, concurrency, offered_rate) == layout_of(
        FLOOR, concurrency, offered_rate
    ):
        return FLOOR
    return FLOOR_PER_PROCESS


def service_floor_of(scenario: str, concurrency: int) -> str:
    """floor_of's twin on the service's settings (closed loop only)."""
    if floor_of(scenario, concurrency) == FLOOR:
        return FLOOR_AS_SERVICE
    return FLOOR_PER_PROCESS_AS_SERVICE


@dataclass(frozen=True, slots=True)
class Timing:
    duration_s: float
    warmup_s: float
    workdir: Path  # h2load's outputs and logs


@dataclass(frozen=True, slots=True)
class Cell:
    scenario: str
    backend: str  # "" for the floor, which has no database
    concurrency: int  # the most calls in flight
    offered_rate: int = 0  # req/s sent whatever the answers; 0: a closed loop


@dataclass(slots=True)
class Measurement:
    cell: Cell
    run: int
    layout: Layout
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    service_cpu_us_per_request: float  # the server process only (not PostgreSQL)
    client_cpu_us_per_request: float
    # Connections per service process halfway through the measured run (SO_REUSEPORT's spread).
    connections: tuple[int, ...] = ()
    ratio_of_floor: float = float("nan")
    ratio_of_service_floor: float = float("nan")  # of the floor on the service's settings
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Summary:
    """The medians of a cell's runs."""

    cell: Cell
    runs: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    ratio_of_floor: float
    ratio_of_service_floor: float
    service_cpu_us_per_request: float
    connections: tuple[tuple[int, ...], ...]  # each run's
    problems: tuple[str, ...]


def summary_of(runs: Sequence[Measurement]) -> Summary:
    return Summary(
        cell=runs[0].cell,
        runs=len(runs),
        requests_per_second=statistics.median(m.requests_per_second for m in runs),
        p50_ms=statistics.median(m.p50_ms for m in runs),
        p99_ms=statistics.median(m.p99_ms for m in runs),
        ratio_of_floor=statistics.median(m.ratio_of_floor for m in runs),
        ratio_of_service_floor=statistics.median(m.ratio_of_service_floor for m in runs),
        service_cpu_us_per_request=statistics.median(m.service_cpu_us_per_request for m in runs),
        connections=tuple(m.connections for m in runs),
        problems=tuple(f"run {m.run}: {p}" for m in runs for p in m.problems),
    )


class Backend:
    """A billing service on its database, with the bench's API key."""

    def __init__(self, name: str, database_url: str, api_key: str, log: Path, bodies: Path) -> None:
        self.name = name
        self.api_key = api_key
        self._database_url = database_url
        self._log = log
        self._starts = 1
        self._bodies = bodies
        self.server = start_billing(database_url, log)
        self.client = BillingClient(self.server.address, api_key)

    def target(self, path: str, body_name: str, message: bytes) -> Target:
        body = write_body(self._bodies, body_name, message)
        return billing_target(self.server.address, path, body, self.api_key)

    def restart(self, launcher: Sequence[str] = ()) -> None:
        """Start the service again on the same database, logging to a new file
        (`launcher`: as for processes.start_billing)."""
        self.close()
        self._starts += 1
        log = self._log.with_name(f"{self._log.stem}-start{self._starts}{self._log.suffix}")
        self.server = start_billing(self._database_url, log, launcher)
        self.client = BillingClient(self.server.address, self.api_key)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@contextmanager
def running_backend(
    name: str, database_url: str, api_key: str, log: Path, bodies: Path
) -> Iterator[Backend]:
    backend = Backend(name, database_url, api_key, log, bodies)
    try:
        yield backend
    finally:
        backend.close()


def with_restart(backend: Backend, measure: Callable[[], Measurement]) -> Measurement:
    """Measure; if the service exits meanwhile, start it again and measure again,
    once. (On a shared machine something else may stop it.)"""
    try:
        return measure()
    except ServerExited as exited:
        note = f"measured again after the service exited: {str(exited).splitlines()[0]}"
        print(f"  {backend.name}: {note}", flush=True)
        backend.restart()
        measurement = measure()
        measurement.problems.append(note)
        return measurement


def _load(
    cell: Cell, run: int, server: ServerProcess, targets: Sequence[Target], timing: Timing
) -> tuple[LoadResult, LoadResult, Measurement]:
    """Warm up, then measure; return (warm-up, measured, measurement)."""
    layout = layout_of(cell.scenario, cell.concurrency, cell.offered_rate)
    targets = list(targets) * (layout.processes // len(targets))
    rate = cell.offered_rate
    server.check_alive()
    try:
        warm = run_load(targets, layout, timing.warmup_s, timing.workdir, rate)
        spread: list[tuple[int, ...]] = []
        idle = server.connections()  # the bench's own gRPC client's, say
        halfway = threading.Timer(
            timing.duration_s / 2, lambda: spread.append(server.connections_by_process(idle))
        )
        cpu_before = server.cpu_seconds()
        halfway.start()
        load = run_load(targets, layout, timing.duration_s, timing.workdir, rate)
        service_cpu = server.cpu_seconds() - cpu_before
        halfway.join()
    except RuntimeError:
        server.check_alive()  # say so if h2load failed because the server is gone
        raise
    server.check_alive()
    done = max(load.succeeded, 1)
    measurement = Measurement(
        cell=cell,
        run=run,
        layout=layout,
        requests_per_second=load.requests_per_second,
        p50_ms=load.percentile_ms(50),
        p99_ms=load.percentile_ms(99),
        requests=load.succeeded,
        service_cpu_us_per_request=service_cpu / done * 1e6,
        client_cpu_us_per_request=load.client_cpu_seconds / done * 1e6,
        connections=spread[0] if spread else (),
    )
    for phase, result in (("warm-up", warm), ("measured run", load)):
        if result.unsuccessful:
            measurement.problems.append(
                f"{phase}: h2load counted {result.unsuccessful} unsuccessful requests"
            )
    if load.succeeded == 0:
        measurement.problems.append("no call completed in the measured run")
    return warm, load, measurement


def _expect_bytes(measurement: Measurement, load: LoadResult, per_response: int) -> None:
    expected = load.succeeded * per_response
    if load.data_bytes != expected:
        measurement.problems.append(
            f"{load.data_bytes} response bytes, expected {expected}: some calls failed"
        )


def floor_target(floor: ServerProcess, bodies: Path, like: bytes, api_key: str | None) -> Target:
    """The floor gets the billing calls' headers and a body of `like`'s size,
    which it does not read."""
    body = write_body(bodies, "floor", like)
    return Target(f"http://{floor.address}{FLOOR_PATH}", body, grpc_headers(api_key))


def measure_floor(
    floor: ServerProcess,
    target: Target,
    scenario: str,
    concurrency: int,
    run: int,
    timing: Timing,
    offered_rate: int = 0,
    backend: str = "",  # the database a database floor waits for
) -> Measurement:
    cell = Cell(scenario, backend, concurrency, offered_rate)
    _, load, measurement = _load(cell, run, floor, [target], timing)
    _expect_bytes(measurement, load, len(grpc_frame(b"")))
    return measurement


def _real_call(call: Callable[[], T], what: str, problems: list[str]) -> T | None:
    """A call through a real gRPC client, to check the service; its failure is
    a problem to report, not a reason to stop the benchmark."""
    try:
        return call()
    except grpc.RpcError as error:
        problems.append(f"{what} failed: {error.code().name}: {error.details()}")
        return None


def measure_check(
    backend: Backend,
    tenant: str,
    concurrency: int,
    run: int,
    timing: Timing,
    offered_rate: int = 0,
) -> Measurement:
    """CheckQuota on one tenant."""
    cell = Cell(CHECK, backend.name, concurrency, offered_rate)
    problems: list[str] = []
    before = _real_call(lambda: backend.client.check(tenant), "CheckQuota before", problems)
    target = backend.target(
        CHECK_PATH, f"check-{tenant}", check_request(tenant).SerializeToString()
    )
    _, load, measurement = _load(cell, run, backend.server, [target], timing)
    after = _real_call(lambda: backend.client.check(tenant), "CheckQuota after", problems)
    measurement.problems += problems
    for reference in (before, after):
        if reference is not None and not reference.allowed:
            measurement.problems.append(f"CheckQuota did not allow the call: {reference}")
    if before is not None:
        # Nothing is consumed meanwhile, so every answer is the one before.
        _expect_bytes(measurement, load, len(grpc_frame(before.SerializeToString())))
    return measurement


# Bytes by which a ConsumeQuota answer may be shorter than the reference one
# (a smaller `used` on another tenant is a shorter varint).
_CONSUME_SIZE_SLACK = 3


def measure_consume(
    backend: Backend,
    scenario: str,
    tenants: Sequence[str],
    concurrency: int,
    run: int,
    timing: Timing,
    offered_rate: int = 0,
) -> Measurement:
    """ConsumeQuota: stream i of the layout calls for tenants[i % len(tenants)]
    (one tenant for CONSUME_HOT); for RATE_LIMIT_HOT, Envoy's ShouldRateLimit
    with one descriptor, which counts as a ConsumeQuota does."""
    cell = Cell(scenario, backend.name, concurrency, offered_rate)
    envoy = scenario == RATE_LIMIT_HOT
    path = RATE_LIMIT_PATH if envoy else CONSUME_PATH
    request = rate_limit_request if envoy else consume_request
    targets = [
        backend.target(
            path, f"{path.rsplit('/', 1)[1]}-{tenant}", request(tenant).SerializeToString()
        )
        for tenant in tenants
    ]
    distinct = sorted(set(tenants))
    problems: list[str] = []
    client = backend.client
    call = client.should_rate_limit if envoy else client.consume
    reference = _real_call(lambda: call(tenants[0]), f"{scenario} before", problems)
    recorded_before = client.total_used(distinct)
    warm, load, measurement = _load(cell, run, backend.server, targets, timing)
    recorded = client.total_used(distinct) - recorded_before
    _real_call(lambda: call(tenants[0]), f"{scenario} after", problems)
    measurement.problems += problems
    # Calls in flight when h2load stops are "started" but not "succeeded": the
    # server may or may not have recorded them.
    least, most = warm.succeeded + load.succeeded, warm.started + load.started
    if not least <= recorded <= most:
        measurement.problems.append(
            f"GetUsage counted {recorded} calls; h2load completed {least} (started {most})"
        )
    if reference is not None:
        smallest = len(grpc_frame(reference.SerializeToString())) - _CONSUME_SIZE_SLACK
        if load.data_bytes < load.succeeded * smallest:
            answered = load.data_bytes // smallest
            measurement.problems.append(
                f"about {load.succeeded - answered} of {load.succeeded} responses carried "
                "no message: gRPC errors"
            )
    return measurement


def spread_of(connections: tuple[int, ...]) -> str:
    """Connections per process ("3:1 "), where there are several processes."""
    return ":".join(map(str, connections)) + " " if len(connections) > 1 else ""


def describe(measurement: Measurement) -> str:
    cell = measurement.cell
    status = "; ".join(measurement.problems) or "ok"
    rate = f"@{cell.offered_rate}/s" if cell.offered_rate else ""
    return (
        f"run {measurement.run} c={cell.concurrency:<3}{rate:<7} {cell.scenario:<28} "
        f"{cell.backend or '-':<8} {measurement.requests_per_second:9.1f} req/s  "
        f"p50 {measurement.p50_ms:7.2f} ms  p99 {measurement.p99_ms:7.2f} ms  "
        f"service {measurement.service_cpu_us_per_request:6.0f} us/req  "
        f"{spread_of(measurement.connections)}[{status}]"
    )
