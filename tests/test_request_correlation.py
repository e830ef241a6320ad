"""One REST call is one call everywhere: its `x-request-id` (the client's, or
one the gateway makes) reaches the RPC log and comes back in the answer, and
with OpenTelemetry on, the server's span is a child of the gateway's."""

import logging

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from billing_service.app import App
from billing_service.config import Settings

from .gateway_fixtures import anonymous_fixture, gateway_fixture, http_fixture  # noqa: F401
from .test_observability import (  # noqa: F401 - spans: the in-memory span exporter
    plans_through_the_gateway,
    spans,
)

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with the RPC log on."""
    return settings.model_copy(update={"rpc_log": True})


def _logged_request_ids(caplog: pytest.LogCaptureFixture, rpc: str) -> list[str | None]:
    return [
        getattr(record, "request_id", None)
        for record in caplog.records
        if record.name == "billing_service.rpc" and getattr(record, "rpc", None) == rpc
    ]


@SQLITE_ONLY
async def test_the_clients_request_id_reaches_the_rpc_log_and_comes_back(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="billing_service.rpc")
    response = await http.get("/v1/plans", headers={"x-request-id": "req-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    assert _logged_request_ids(caplog, "billing.v1.PlanService/ListPlans") == ["req-42"]


@SQLITE_ONLY
async def test_a_call_without_a_request_id_gets_one_of_its_own(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="billing_service.rpc")
    first = await http.get("/v1/plans/nope")
    second = await http.get("/v1/plans/nope")
    assert first.status_code == second.status_code == 404
    made = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert made[0] != made[1] and all(made)
    assert _logged_request_ids(caplog, "billing.v1.PlanService/GetPlan") == made


@SQLITE_ONLY
async def test_the_gateways_own_answers_carry_the_request_id(
    anonymous: httpx.AsyncClient,
) -> None:
    unknown = await anonymous.get("/v1/nowhere", headers={"x-request-id": "r-1"})
    assert unknown.status_code == 404 and unknown.headers["x-request-id"] == "r-1"
    keyless = await anonymous.get("/v1/plans", headers={"x-request-id": "r-2"})
    assert keyless.status_code == 401 and keyless.headers["x-request-id"] == "r-2"


@SQLITE_ONLY
@pytest.mark.parametrize("request_id", ["x" * 129, "two words", "caf\u00e9"])
async def test_a_malformed_request_id_is_a_400(http: httpx.AsyncClient, request_id: str) -> None:
    response = await http.get("/v1/plans", headers={b"x-request-id": request_id.encode()})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_argument" and "x-request-id" in error["message"]


@SQLITE_ONLY
async def test_the_server_span_of_a_rest_call_is_a_child_of_the_gateway_span(
    app: App,
    spans: InMemorySpanExporter,  # noqa: F811 - test_observability's fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # what turns traces on
    await plans_through_the_gateway(app)
    finished = spans.get_finished_spans()
    server_span = next(s for s in finished if s.name == "/billing.v1.PlanService/ListPlans")
    gateway_span = next(s for s in finished if s.name == "GET /v1/plans")
    assert gateway_span.context is not None and server_span.parent is not None
    assert server_span.context is not None
    assert server_span.context.trace_id == gateway_span.context.trace_id
    assert server_span.parent.span_id == gateway_span.context.span_id
