"""The API browser at /docs, in a real headless browser: Debian's chromium
(`make test-tools`) driven by playwright over the DevTools protocol, against
the real gateway and gRPC server. It renders the routes from the gateway's
own /openapi.json with no network beyond loopback, and "try it out" reaches
the service with the key given in the authorize dialog."""

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from billing.v1 import plan_pb2
from playwright.async_api import Browser, Request, async_playwright

from billing_service.app import App
from billing_service.gateway.server import RunningGateway

from .conftest import Client
from .gateway_fixtures import (  # noqa: F401 - fixtures
    anonymous_fixture,
    gateway_fixture,
    gateway_url,
)

# Generous: a browser on a loaded machine takes many times its idle pace.
BROWSER_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a page, not storage


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run `make test-tools`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            # As root (CI), chromium runs only without its sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            timeout=BROWSER_TIMEOUT_MS,
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_root_redirects_to_the_api_browser(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "docs"
    page = await anonymous.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    script = await anonymous.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000


async def test_the_openapi_document_describes_bearer_auth_and_the_error_shape(
    anonymous: httpx.AsyncClient,
) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "billing-service keys create" in scheme["description"]
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    listing = document["paths"]["/v1/plans"]["get"]["responses"]
    assert listing["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


async def test_the_page_renders_the_routes_and_try_it_out_reaches_the_service(
    browser: Browser, gateway: RunningGateway, client: Client, tmp_path: Path, app: App
) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="free", name="Free", quotas={"api_call": 10}),
        metadata=client.auth,
    )
    base = gateway_url(gateway)
    page = await browser.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    outside: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(base):
            outside.append(request.url)

    page.on("request", note)

    await page.goto(base + "/")
    assert page.url == base + "/docs"
    listing = page.locator("#operations-PlanService-ListPlans")
    await listing.wait_for()
    assert await page.locator(".opblock").count() > 50  # every route, not a few

    await page.get_by_role("button", name="Authorize").first.click()
    await page.locator(".auth-container input").fill(client.key)
    await page.locator(".auth-btn-wrapper").get_by_role("button", name="Authorize").click()
    await page.get_by_role("button", name="Close").click()

    await listing.locator(".opblock-summary").click()
    await listing.get_by_role("button", name="Try it out").click()
    async with page.expect_response(lambda r: "/v1/plans" in r.url) as answered:
        await listing.get_by_role("button", name="Execute").click()
    response = await answered.value
    assert response.status == 200
    assert (await response.json())["plans"][0]["key"] == "free"
    status = listing.locator(".live-responses-table .response .response-col_status").first
    await status.wait_for()
    assert (await status.inner_text()).strip() == "200"
    await page.screenshot(path=str(tmp_path / "api-browser.png"), full_page=False)
    assert outside == []  # nothing from a CDN: the service runs offline
