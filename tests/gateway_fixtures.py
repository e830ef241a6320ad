"""Fixtures of the REST gateway tests: the real gRPC server of conftest with the
gateway in front of it on loopback, and HTTP clients that send a key. Import the
`*_fixture` functions into a test module to use them under their short names."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from billing_service.api.server import RunningServer
from billing_service.app import App
from billing_service.gateway.server import RunningGateway, start_gateway

from .conftest import create_operator_key


@pytest.fixture(name="gateway")
async def gateway_fixture(server: RunningServer) -> AsyncIterator[RunningGateway]:
    running = await start_gateway("127.0.0.1:0", f"127.0.0.1:{server.port}")
    try:
        yield running
    finally:
        await running.stop()


def gateway_url(gateway: RunningGateway) -> str:
    return f"http://127.0.0.1:{gateway.port}"


@pytest.fixture(name="anonymous")
async def anonymous_fixture(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway that sends no key."""
    async with httpx.AsyncClient(base_url=gateway_url(gateway)) as http:
        yield http


@pytest.fixture(name="http")
async def http_fixture(app: App, gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway authenticated as operator 'acme'."""
    key = await create_operator_key(app, "acme")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway_url(gateway), headers=headers) as client:
        yield client


@pytest.fixture(name="other_http")
async def other_http_fixture(app: App, gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway authenticated as operator 'globex'."""
    key = await create_operator_key(app, "globex")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway_url(gateway), headers=headers) as client:
        yield client


def ok(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 200 response (the body is shown when it is not one)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    return body
