"""Prometheus metrics (prometheus-client), served at /metrics on
BILLING_METRICS_ADDR by the first serving process.

With several worker processes, each writes its figures to files in
PROMETHEUS_MULTIPROC_DIR (the client's multiprocess mode, which `serve` sets
up before the workers start) and /metrics sums them: the figures cover every
process. Import this module only once that variable is settled."""

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from threading import Thread
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .call_context import CALL, CallRecord

log = logging.getLogger(__name__)

RPCS = Counter("billing_rpc_requests", "RPCs served", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "billing_rpc_duration_seconds",
    "RPC latency, from the request read to the answer",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
DECISIONS = Counter(
    "billing_quota_decisions",
    "Quota decisions of the metering core, by the API that asked and their outcome",
    ["api", "outcome"],
)
BATCH_SIZE = Histogram(
    "billing_metering_batch_size",
    "Calls per batch the metering worker writes",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
QUEUE_WAIT = Histogram(
    "billing_metering_queue_wait_seconds",
    "How long the oldest call of a batch waited for the metering worker",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
DB_ERRORS = Counter("billing_database_errors", "Calls answered UNAVAILABLE: storage trouble")
OUTBOX = Gauge(
    "billing_outbox_depth",
    "Rows waiting in an outbox",
    ["outbox"],
    multiprocess_mode="mostrecent",
)


def observe_call(record: CallRecord, code: grpc.StatusCode, seconds: float) -> None:
    service, _, method = record.rpc.rpartition("/")
    RPCS.labels(service, method, code.name).inc()
    RPC_SECONDS.labels(service, method).observe(seconds)
    if record.error_reason == "STORAGE_UNAVAILABLE":
        DB_ERRORS.inc()


def observe_decision(outcome: str) -> None:
    """One decision of the metering core (metering/outcomes.py), labelled
    with the method of the RPC being served: ConsumeQuota, CheckQuota,
    ShouldRateLimit... (a REST call, with the RPC it maps to)."""
    call = CALL.get()
    api = call.rpc.rpartition("/")[2] if call is not None else "none"
    DECISIONS.labels(api, outcome).inc()


def observe_batch(size: int, waited: float) -> None:
    BATCH_SIZE.observe(size)
    QUEUE_WAIT.observe(waited)


def serve_metrics(address: str) -> tuple[WSGIServer, Thread]:
    """Start /metrics on `address` (host:port) in a thread of its own."""
    host, _, port = address.rpartition(":")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry)
    return server, thread


async def keep_depths(read: Callable[[], Awaitable[dict[str, int]]], every: float) -> None:
    """Refresh the outbox gauges every `every` seconds (the process serving
    /metrics does; reading them at scrape time would block its thread)."""
    while True:
        try:
            for outbox, depth in (await read()).items():
                OUTBOX.labels(outbox).set(depth)
        except Exception as error:  # storage down: the gauges keep their last figures
            log.warning("metrics: outbox depths unavailable: %s", error)
        await asyncio.sleep(every)
