"""Metrics at /metrics (one process and several), JSON logs with a line per
RPC, and OpenTelemetry spans of the gRPC server and the gateway."""

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from billing.v1 import plan_pb2, subscription_pb2, usage_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from billing_service.api.server import RunningServer, start_server
from billing_service.app import App
from billing_service.config import Settings
from billing_service.gateway.server import start_gateway

from .cli_subprocess import free_port, serve, service_env
from .conftest import Client, create_operator_key, make_client
from .metering.test_envoy_ratelimit import Response, descriptor, limit

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
RFC3339_UTC_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


async def _quota_calls(client: Client, calls: int = 3, limit: int = 2) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", quotas={"seo": limit}),
        metadata=client.auth,
    )
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(user_id="t1", plan_key="pro"),
        metadata=client.auth,
    )
    for _ in range(calls):
        try:
            await client.usage.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(user_id="t1", primitive="seo"),
                metadata=client.auth,
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape_when_up(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics, once the first worker serves it (health may have answered
    from another worker before the first has started)."""
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                return _samples((await http.get(url)).text)
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing serves {url}")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_addr": "127.0.0.1:0"})


@SQLITE_ONLY
async def test_metrics_count_rpcs_decisions_batches_and_outboxes(
    app: App, server: RunningServer
) -> None:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    async with httpx.AsyncClient() as http:
        before = _samples((await http.get(url)).text)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await _quota_calls(make_client(channel, await create_operator_key(app, "acme")))
        response = await http.get(url)
    assert response.status_code == 200
    after = _samples(response.text)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    consume = {"service": "billing.v1.UsageService", "method": "ConsumeQuota"}
    assert grew("billing_rpc_requests_total", code="OK", **consume) == 2
    assert grew("billing_rpc_requests_total", code="RESOURCE_EXHAUSTED", **consume) == 1
    assert grew("billing_rpc_duration_seconds_count", **consume) == 3
    consumed = {"api": "ConsumeQuota"}
    assert grew("billing_quota_decisions_total", outcome="admitted", **consumed) == 2
    assert grew("billing_quota_decisions_total", outcome="quota_exceeded", **consumed) == 1
    assert grew("billing_metering_batch_size_count") >= 1
    assert ("billing_metering_queue_wait_seconds_count", frozenset()) in after
    assert ("billing_database_errors_total", frozenset()) in after
    for outbox in ("stripe_meter_events", "usage_alerts", "deliveries_email"):
        assert ("billing_outbox_depth", frozenset({("outbox", outbox)})) in after


@SQLITE_ONLY
async def test_every_quota_decision_is_counted_by_the_api_that_asked(
    app: App, server: RunningServer
) -> None:
    """Envoy's ShouldRateLimit decides as ConsumeQuota does; a mesh where
    sidecars make every decision must see them at /metrics."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    async with httpx.AsyncClient() as http:
        before = _samples((await http.get(url)).text)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            client = make_client(channel, await create_operator_key(app, "acme"))
            await _quota_calls(client, calls=1, limit=2)  # one ConsumeQuota admitted
            check = usage_pb2.CheckQuotaRequest(user_id="t1", primitive="seo")
            assert (await client.usage.CheckQuota(check, metadata=client.auth)).allowed
            seo = descriptor(user_id="t1", primitive="seo")
            codes = [(await limit(client, seo)).overall_code for _ in range(2)]
            assert codes == [Response.OK, Response.OVER_LIMIT]
            assert not (await client.usage.CheckQuota(check, metadata=client.auth)).allowed
            await _quota_calls(client, calls=1, limit=2)  # refused
        after = _samples((await http.get(url)).text)

    def grew(api: str, outcome: str) -> float:
        labels = {"api": api, "outcome": outcome}
        name = "billing_quota_decisions_total"
        return _value(after, name, **labels) - _value(before, name, **labels)

    for api in ("ShouldRateLimit", "ConsumeQuota", "CheckQuota"):
        assert (grew(api, "admitted"), grew(api, "quota_exceeded")) == (1, 1), api


@SQLITE_ONLY
async def test_json_logs_give_one_line_per_rpc_with_its_request_id(
    app: App, database_url: str, tmp_path: Path
) -> None:
    key = await create_operator_key(app, "acme")
    env = service_env(database_url, log_format="json", rpc_log="true")
    async with serve(env, tmp_path) as serving:
        async with grpc.aio.insecure_channel(serving.target) as channel:
            client = make_client(channel, key)
            await client.plans.ListPlans(
                plan_pb2.ListPlansRequest(),
                metadata=[*client.auth, ("x-request-id", "req-42")],
            )
            with pytest.raises(grpc.aio.AioRpcError):
                await client.plans.GetPlan(
                    plan_pb2.GetPlanRequest(key="nope"), metadata=client.auth
                )
        serving.send_sigterm()
        await serving.wait_exit(60)
    text = [line for line in serving.log().splitlines() if line.strip()]
    lines = [json.loads(line) for line in text if line.startswith("{")]
    # Anything else is gRPC core's own (C) logging, which Python's never sees.
    assert all(re.match(r"[IWEF]\d{4} ", line) for line in text if not line.startswith("{"))
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # RFC 3339 in UTC, to the millisecond, as log pipelines parse it.
    assert all(re.fullmatch(RFC3339_UTC_MS, line["time"]) for line in lines), lines[0]["time"]
    logged = datetime.fromisoformat(lines[-1]["time"])
    assert logged.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged) < timedelta(hours=1)
    rpcs = [line for line in lines if line.get("rpc")]
    listed = next(line for line in rpcs if line["rpc"] == "billing.v1.PlanService/ListPlans")
    assert listed["code"] == "OK" and listed["request_id"] == "req-42"
    assert listed["operator_id"] == 1 and listed["duration_ms"] > 0
    missing = next(line for line in rpcs if line["rpc"] == "billing.v1.PlanService/GetPlan")
    assert missing["code"] == "NOT_FOUND" and missing["request_id"] is None
    assert key not in serving.log()


@SQLITE_ONLY
async def test_metrics_of_several_workers_add_up(
    app: App, database_url: str, tmp_path: Path
) -> None:
    key = await create_operator_key(app, "acme")
    metrics_port = free_port()
    env = service_env(database_url, workers="2", metrics_addr=f"127.0.0.1:{metrics_port}")
    async with serve(env, tmp_path) as serving:
        # 16 connections: the kernel spreads them over both workers (all on
        # one, 1 time in 32,768).
        channels = [grpc.aio.insecure_channel(serving.target) for _ in range(16)]
        try:
            await _quota_calls(make_client(channels[0], key), calls=0, limit=1000)
            calls = [
                make_client(channel, key).usage.ConsumeQuota(
                    usage_pb2.ConsumeQuotaRequest(user_id="t1", primitive="seo"),
                    metadata=[("authorization", f"Bearer {key}")],
                )
                for channel in channels
                for _ in range(5)
            ]
            await asyncio.gather(*calls)
        finally:
            for channel in channels:
                await channel.close()
        samples = await _scrape_when_up(f"http://127.0.0.1:{metrics_port}/metrics")
    consume = {"service": "billing.v1.UsageService", "method": "ConsumeQuota", "code": "OK"}
    assert _value(samples, "billing_rpc_requests_total", **consume) == 16 * 5


_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider whose spans stay in memory: the process's one (a
    provider is set once per process, as an application would)."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER


async def plans_through_the_gateway(app: App) -> None:
    running = await start_server(app, "127.0.0.1:0")
    gateway = await start_gateway("127.0.0.1:0", f"127.0.0.1:{running.port}")
    try:
        key = await create_operator_key(app, "acme")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway.port}",
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            assert (await http.get("/v1/plans")).status_code == 200
    finally:
        await gateway.stop()
        await running.stop(0)


@SQLITE_ONLY
async def test_traces_cover_the_grpc_server_and_the_gateway(
    app: App, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # what turns traces on
    await plans_through_the_gateway(app)
    names = [span.name for span in spans.get_finished_spans()]
    assert "/billing.v1.PlanService/ListPlans" in names
    assert any(name.startswith("GET /v1/plans") for name in names)


@SQLITE_ONLY
async def test_traces_are_off_without_otel_variables(
    app: App, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    await plans_through_the_gateway(app)
    assert spans.get_finished_spans() == ()
