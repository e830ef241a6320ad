"""The REST gateway as an HTTP server: malformed requests, unknown routes and
methods, an unreachable or silent gRPC server, and the OpenAPI document
against the real routes (also fuzzed with schemathesis). Storage does not
matter here, so only SQLite is used."""

import asyncio
import socket
import time
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from billing.v1 import (
    account_kit_pb2,
    admin_pb2,
    billing_pb2,
    meter_pb2,
    notification_pb2,
    plan_pb2,
    project_pb2,
    settings_pb2,
    stripe_pb2,
    subscription_pb2,
    usage_pb2,
    user_pb2,
)
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from starlette.routing import Route

from billing_service.gateway.server import RunningGateway, start_gateway

from .gateway_fixtures import (  # noqa: F401 - fixtures
    anonymous_fixture,
    gateway_fixture,
    gateway_url,
    http_fixture,
    ok,
)


@pytest.fixture
def backend() -> str:
    return "sqlite"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"key": "pro", "name": ', "malformed JSON body"),
        (b"\xff\xfe", "malformed JSON body"),
        (b'{"key": NaN}', "malformed JSON body"),
        (b'["pro"]', "the body must be a JSON object"),
        (b'{"key": "pro", "name": 5}', "Failed to parse name field"),
        (b'{"key": "pro", "name": "Pro", "quotas": {"seo": "many"}}', "Failed to parse quotas"),
        (b'{"key": "pro", "name": "Pro", "quotas": [1]}', "Failed to parse quotas"),
        (b'{"key": "pro", "name": "Pro", "period": "fortnight"}', "Invalid enum value"),
        (b'{"key": "pro", "name": "Pro", "colour": "red"}', 'no field named "colour"'),
    ],
)
async def test_bad_bodies_are_400(http: httpx.AsyncClient, body: bytes, message: str) -> None:
    response = await http.post("/v1/plans", content=body)
    error = error_of(response, 400)
    assert error["code"] == "invalid_argument"
    assert message in error["message"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_size=ten", "Failed to parse page_size field"),
        ("page_size=99999999999", "Failed to parse page_size field"),
        ("include_archived=maybe", "'include_archived' must be true or false"),
        ("colour=red", "unknown query parameter 'colour'"),
        ("page_size=1&page_size=2", "given more than once"),
        ("page_size=1&page_size=2", "given more than once"),
    ],
)
async def test_bad_query_parameters_are_400(
    http: httpx.AsyncClient, query: str, message: str
) -> None:
    error = error_of(await http.get(f"/v1/plans?{query}"), 400)
    assert error["code"] == "invalid_argument"
    assert message in error["message"]


async def test_a_route_without_body_refuses_one(http: httpx.AsyncClient) -> None:
    response = await http.request("GET", "/v1/plans", content=b'{"page_size": 1}')
    assert error_of(response, 400)["message"] == "GET /v1/plans takes no body"


async def test_a_body_route_takes_no_query_parameters(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/plans?key=pro", json={"name": "Pro"})
    assert error_of(response, 400)["message"] == "unknown query parameter 'key'"


async def test_a_too_large_body_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/plans", content=b" " * (1024 * 1024 + 1))
    assert error_of(response, 413)["code"] == "payload_too_large"


async def test_the_path_wins_over_the_body(http: httpx.AsyncClient) -> None:
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro"}))
    body = {"tenant_id": "someone-else", "plan_key": "pro"}
    subscription = ok(await http.put("/v1/users/t1/billing/subscription", json=body))
    assert subscription["subscription"]["tenant_id"] == "t1"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/docs/"),
        ("GET", "/v1"),
        ("GET", "/v1/plans/"),
        ("GET", "/v1/plan"),
        ("POST", "/v1/users/t1/billing/usage:explode"),
        ("GET", "/v2/plans"),
    ],
)
async def test_unknown_routes_are_404(anonymous: httpx.AsyncClient, method: str, path: str) -> None:
    error = error_of(await anonymous.request(method, path), 404)
    assert error == {"code": "not_found", "message": f"no route for {method} {path}"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/plans", "POST, GET"),
        ("PUT", "/v1/plans/pro", "GET"),
        ("HEAD", "/v1/plans/pro", "GET"),
        ("POST", "/v1/users/t1/billing/subscription", "PUT, GET"),
        ("GET", "/v1/users/t1/billing/usage:consume", "POST"),
        ("POST", "/openapi.json", "GET"),
    ],
)
async def test_wrong_methods_are_405(
    http: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == set(allowed.split(", "))
    if method != "HEAD":
        assert error_of(response, 405)["code"] == "method_not_allowed"


async def test_a_malformed_authorization_header_is_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/plans", headers=[(b"Authorization", b"Bearer \xff")])
    assert error_of(response, 401) == {
        "code": "unauthenticated",
        "message": "malformed Authorization header",
    }


async def test_keep_alive_responses_are_not_held_back(anonymous: httpx.AsyncClient) -> None:
    # Without TCP_NODELAY every response on a reused connection waits ~40 ms for
    # the client's delayed ACK. Load only lengthens some calls: the quickest of
    # 30 stays well under that wait when nothing holds responses back.
    await anonymous.get("/v1/nothing")
    quickest = float("inf")
    for _ in range(30):
        started = time.perf_counter()
        error_of(await anonymous.get("/v1/nothing"), 404)
        quickest = min(quickest, time.perf_counter() - started)
    assert quickest < 0.02


async def test_an_unreachable_grpc_server_is_503() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    gateway = await start_gateway("127.0.0.1:0", f"127.0.0.1:{dead_port}")
    try:
        async with httpx.AsyncClient(base_url=gateway_url(gateway)) as http:
            response = await http.get("/v1/plans", headers={"Authorization": "Bearer x"})
    finally:
        await gateway.stop()
    assert error_of(response, 503) == {
        "code": "unavailable",
        "message": "the billing service is unavailable",
    }


async def test_a_grpc_server_that_never_answers_is_504() -> None:
    # A listener that accepts connections and says nothing: the call's deadline passes.
    connections: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    gateway = await start_gateway("127.0.0.1:0", f"127.0.0.1:{port}", deadline_seconds=0.3)
    try:
        async with httpx.AsyncClient(base_url=gateway_url(gateway)) as http:
            response = await http.get("/v1/plans", headers={"Authorization": "Bearer k"})
    finally:
        await gateway.stop()
        for writer in connections:
            writer.close()
        silent.close()
    assert error_of(response, 504) == {
        "code": "deadline_exceeded",
        "message": "the billing service did not answer in time",
    }


# --- The OpenAPI document -------------------------------------------------------------

# One request per RPC that succeeds in the state the earlier ones leave, in order,
# as (path parameters, JSON body or None, query parameters).
EXAMPLES: dict[str, tuple[dict[str, str], Any, dict[str, str]]] = {
    "UpsertAccountKit": ({}, {"id": "k", "name": "K", "primitives": ["seo"]}, {}),
    "GetAccountKit": ({"id": "k"}, None, {}),
    "ListAccountKits": ({}, None, {"page_size": "10"}),
    "UpsertPlan": ({}, {"key": "pro", "name": "Pro", "account_kit_id": "k"}, {}),
    "GetPlan": ({"key": "pro"}, None, {}),
    "ListPlans": ({}, None, {"include_archived": "true"}),
    "SetSubscription": ({"tenant_id": "t1"}, {"plan_key": "pro"}, {}),
    "GetSubscription": ({"tenant_id": "t1"}, None, {}),
    "ListSubscriptions": ({}, None, {"plan_key": "pro"}),
    "CheckQuota": ({"tenant_id": "t1", "primitive": "seo"}, None, {"quantity": "2"}),
    "ConsumeQuota": ({"tenant_id": "t1"}, {"primitive": "seo"}, {}),
    "RecordUsage": ({"tenant_id": "t1"}, {"primitive": "seo", "quantity": 2}, {}),
    "RefundUsage": ({"usage_event_id": "<from ConsumeQuota>"}, {}, {}),
    "GetUsage": ({"tenant_id": "t1"}, None, {"as_of": "2026-06-01T00:00:00Z"}),
    "SetSubscriptionByOrganizationId": ({"organization_id": "o1"}, {"plan_key": "pro"}, {}),
    "GetSubscriptionByOrganizationId": ({"organization_id": "o1"}, None, {}),
    "CheckQuotaByOrganizationId": ({"organization_id": "o1", "primitive": "seo"}, None, {}),
    "ConsumeQuotaByOrganizationId": ({"organization_id": "o1"}, {"primitive": "seo"}, {}),
    "RecordUsageByOrganizationId": (
        {"organization_id": "o1"},
        {"primitive": "seo", "quantity": 2},
        {},
    ),
    "GetUsageByOrganizationId": ({"organization_id": "o1"}, None, {}),
    "UpsertProject": ({"user_id": "t1", "project_id": "p1"}, {"name": "P1"}, {}),
    "UpsertProjectByOrganizationId": (
        {"organization_id": "o1", "project_id": "p2"},
        {"name": "P2"},
        {},
    ),
    "GetProject": ({"project_id": "p1"}, None, {}),
    "ListProjects": ({"user_id": "t1"}, None, {}),
    "ListProjectsByOrganizationId": ({"organization_id": "o1"}, None, {}),
    "UpsertMeter": ({"key": "gpu_hours"}, {"display_name": "GPU", "unit": "hour", "scale": 2}, {}),
    "GetMeter": ({"key": "gpu_hours"}, None, {}),
    "ListMeters": ({}, None, {}),
    "RecordAiUsage": ({"project_id": "p1"}, {"input_tokens": 10, "cost_cents": 0.05}, {}),
    "GetUsageSummary": ({"user_id": "t1"}, None, {"year": "2026", "month": "6"}),
    "GetUsageSummaryByOrganizationId": (
        {"organization_id": "o1"},
        None,
        {"year": "2026", "month": "6"},
    ),
    "GetUsageByProject": ({"user_id": "t1"}, None, {"year": "2026", "month": "6"}),
    "GetUsageByProjectByOrganizationId": (
        {"organization_id": "o1"},
        None,
        {"year": "2026", "month": "6"},
    ),
    "GetProjectUsage": (
        {"project_id": "p1"},
        None,
        {"from_date": "2026-06-01", "to_date": "2026-06-30"},
    ),
    "GetBillingPeriods": ({"user_id": "t1"}, None, {}),
    "GetBillingPeriodsByOrganizationId": ({"organization_id": "o1"}, None, {}),
    "GrantCredits": ({"user_id": "t1"}, {"amount_cents": 500, "reason": "welcome"}, {}),
    "GrantCreditsByOrganizationId": (
        {"organization_id": "o1"},
        {"amount_cents": "5", "reason": "r"},
        {},
    ),
    "GetCreditBalance": ({"user_id": "t1"}, None, {}),
    "GetCreditBalanceByOrganizationId": ({"organization_id": "o1"}, None, {}),
    "ArchivePlan": ({"key": "pro"}, {}, {}),
}
API_MODULES = (
    account_kit_pb2,
    admin_pb2,
    plan_pb2,
    subscription_pb2,
    usage_pb2,
    project_pb2,
    meter_pb2,
    billing_pb2,
    stripe_pb2,
    user_pb2,
    settings_pb2,
    notification_pb2,
)


def documented_operations(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path template) of every documented operation."""
    return {
        operation["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def test_the_document_covers_every_rpc_and_only_the_served_routes(
    anonymous: httpx.AsyncClient, gateway: RunningGateway
) -> None:
    document = ok(await anonymous.get("/openapi.json"))
    assert document["openapi"].startswith("3.1")
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = documented_operations(document)

    every_rpc = {
        method.name
        for module in API_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    # Each RPC by its name; an additional binding by its name and variable.
    assert every_rpc <= set(operations)
    assert all(o in every_rpc or o.split("By")[0] in every_rpc for o in operations)

    # Besides the API: the document itself and the API browser (test_api_browser.py).
    routes = [route for route in gateway.app.routes if isinstance(route, Route)]
    assert len(routes) == len(gateway.app.routes) - 1  # the browser's files are a Mount
    served = {
        (method, route.path.replace(":segment}", "}"))
        for route in routes
        for method in route.methods or ()
        if route.path not in ("/openapi.json", "/", "/docs")
    }
    assert served == set(operations.values())


async def test_the_document_describes_everything_with_the_protos_comments(
    anonymous: httpx.AsyncClient,
) -> None:
    document = ok(await anonymous.get("/openapi.json"))
    check = document["paths"]["/v1/users/{tenant_id}/billing/quotas/{primitive}"]["get"]
    assert check["description"].startswith("Read-only quota decision: would `quantity` more")
    assert "\nNever records anything" in check["description"]  # line breaks kept
    tenant = next(p for p in check["parameters"] if p["name"] == "tenant_id")
    assert tenant["description"].startswith(
        "The owner when it is a user: user_id's older name, kept on the wire."
    )

    schemas = document["components"]["schemas"]
    standing = schemas["billing.v1.QuotaStanding"]
    assert standing["description"].startswith(
        "A tenant's standing for one primitive in one period.\n\nFigures: the exact figures"
    )
    assert standing["properties"]["used"]["type"] == ["number", "null"]  # as used_decimal
    assert standing["properties"]["period_end"] == {
        "type": "string",
        "format": "date-time",
        "description": "End (exclusive) of the period.",
    }
    response = schemas["billing.v1.CheckQuotaResponse"]["properties"]
    assert response["standing"] == {
        "$ref": "#/components/schemas/billing.v1.QuotaStanding",
        "description": "The standing now (nothing is recorded).",
    }
    # An enum lists its values as JSON shows them, with their comments.
    assert response["reason"]["description"].endswith(
        "\n\n- `null`: The call is admitted.\n"
        "- `quota_exceeded`: The period's quota would be exceeded.\n"
        "- `subscription_inactive`: The subscription's status does not allow metered calls.\n"
        "- `primitive_not_permitted`: The tenant's account kit does not grant the primitive."
    )

    # Every element is described: an undocumented proto element fails here.
    undescribed = [
        f"{operation['operationId']} {parameter['name']}"
        for item in document["paths"].values()
        for operation in item.values()
        for parameter in [{"name": "", **operation}, *operation["parameters"]]
        if not parameter.get("description")
    ]
    undescribed += [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, prop_schema in {"": schema, **schema.get("properties", {})}.items()
        if not prop_schema.get("description")
    ]
    assert undescribed == []


# Served by their own tests: the Stripe routes need a (fake) Stripe
# (test_stripe_gateway.py), the end users' ones a signed-in user
# (test_end_users_gateway.py), the admin ones the admin credential (test_admin.py).
SERVED_ELSEWHERE = (
    "AdminService",
    "StripeService",
    "StripeWebhookService",
    "UserService",
    "SettingsService",
    "NotificationService",
    "UsageAlertService",
)


def operations_served_elsewhere(document: dict[str, Any]) -> set[str]:
    """The operations other tests serve (SERVED_ELSEWHERE)."""
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if operation["tags"][0] in SERVED_ELSEWHERE
    }


async def test_every_documented_route_is_served(http: httpx.AsyncClient) -> None:
    document = ok(await http.get("/openapi.json"))
    operations = documented_operations(document)
    for name in operations_served_elsewhere(document):
        del operations[name]
    assert list(EXAMPLES) == sorted(operations, key=list(EXAMPLES).index)

    usage_event_id = ""
    for operation_id, (params, body, query) in EXAMPLES.items():
        method, template = operations[operation_id]
        path = template
        for name, value in params.items():
            path = path.replace(
                f"{{{name}}}", usage_event_id if name == "usage_event_id" else value
            )
        assert "{" not in path
        response = await http.request(method, path, json=body, params=query)
        result = ok(response)
        response_schema = document["paths"][template][method.lower()]["responses"]["200"]
        schema_name = response_schema["content"]["application/json"]["schema"]["$ref"]
        assert schema_name.endswith("Response")
        if operation_id == "ConsumeQuota":
            usage_event_id = result["usage_event_id"]


def fuzz(base_url: str, key: str, document: dict[str, Any], mode: GenerationMode) -> None:
    """Send schemathesis' requests for every operation; no 5xx, and 2xx responses
    conform to the document."""
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    ]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=5,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=base_url, session=session)
            case.validate_response(response, checks=checks)

        check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_schemathesis_finds_no_server_errors(
    http: httpx.AsyncClient, mode: GenerationMode
) -> None:
    ok(await http.post("/v1/account-kits", json={"id": "k", "name": "K", "primitives": ["*"]}))
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro", "quotas": {"seo": 5}}))
    document = ok(await http.get("/openapi.json"))
    key = http.headers["authorization"].removeprefix("Bearer ")
    # schemathesis is synchronous: it runs in a thread while this loop serves.
    await asyncio.to_thread(fuzz, str(http.base_url).rstrip("/"), key, document, mode)
