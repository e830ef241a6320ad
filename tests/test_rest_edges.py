"""REST as HTTP clients expect it: Retry-After on 429, 401 in
HTTP's words before gRPC sees the credentials, 415 for a body that is not
JSON, and an auth cache that refused keys do not grow."""

import asyncio
import json
import logging

import httpx
import pytest

from billing_service.app import App
from billing_service.gateway.server import RunningGateway

from .gateway_fixtures import anonymous_fixture, gateway_fixture, http_fixture  # noqa: F401


async def test_a_429_says_when_to_retry(http: httpx.AsyncClient) -> None:
    await http.post("/v1/plans", json={"key": "pro", "name": "Pro", "quotas": {"seo": 1}})
    await http.put("/v1/users/t/billing/subscription", json={"plan_key": "pro"})
    await http.post("/v1/users/t/billing/usage:consume", json={"primitive": "seo"})
    response = await http.post("/v1/users/t/billing/usage:consume", json={"primitive": "seo"})
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Plan quota exceeded for 'seo' (1/1 this period)",
            "used": 1,
            "limit": 1,
        }
    }
    # The test's period (June 2026) ended long ago by the wall clock: at least 1.
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_missing_key_is_told_in_http_words(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/plans")
    assert response.status_code == 401
    assert "Authorization header" in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("size", [600, 9_000, 20_000])
async def test_oversized_credentials_are_401(anonymous: httpx.AsyncClient, size: int) -> None:
    response = await anonymous.get("/v1/plans", headers={"Authorization": "Bearer " + "k" * size})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_is_415(http: httpx.AsyncClient, content_type: str) -> None:
    response = await http.post(
        "/v1/plans", content=b'{"key":"pro","name":"Pro"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_json_with_a_charset_and_without_a_content_type_is_read(
    http: httpx.AsyncClient,
) -> None:
    for headers in ({"Content-Type": "application/json; charset=utf-8"}, {}):
        response = await http.post(
            "/v1/plans", content=b'{"key":"pro","name":"Pro"}', headers=headers
        )
        assert response.status_code == 200, response.text


async def test_refused_keys_are_not_cached(app: App, anonymous: httpx.AsyncClient) -> None:
    for i in range(300):
        await anonymous.get("/v1/plans", headers={"Authorization": f"Bearer bk_{i:040d}"})
    assert len(app.authenticator._cache) == 0


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "DELETE"])
async def test_a_custom_verb_route_is_not_swallowed_by_a_variable(
    http: httpx.AsyncClient, method: str
) -> None:
    response = await http.request(method, "/v1/plans/x:archive")
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "pro", "name": "Pro", "period": None}, "period"),
        ({"key": "pro", "name": None}, "name"),
        ({"key": "pro", "name": "Pro", "quotas": None}, "quotas"),
        ({"key": "pro", "name": "Pro", "period": 2}, "period"),
        ({"key": "pro", "name": "Pro", "period": False}, "period"),
    ],
    ids=["null-enum", "null-string", "null-map", "enum-number", "enum-bool"],
)
async def test_json_null_and_enum_numbers_are_refused(
    http: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    """The document allows neither: protobuf's mapping would read them as
    defaults or raw numbers, which is not what the client meant."""
    response = await http.post("/v1/plans", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"{field}: ")
    assert (await http.get("/v1/plans/pro")).status_code == 404


async def test_a_list_over_its_limit_is_refused_even_with_duplicates(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/account-kits", json={"name": "K", "permissions": ["p"] * 101})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "permissions"


async def test_a_client_leaving_mid_body_leaves_no_traceback(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(
        b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"key":'
    )
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.3)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    del reader


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/plans HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
        b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ],
    ids=["nul-in-a-header", "negative-content-length", "no-request-line"],
)
async def test_malformed_http_gets_the_json_error_shape(
    gateway: RunningGateway, head: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(head)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"
