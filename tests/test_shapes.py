"""The shapes the product documents show, over the real REST gateway (and
gRPC where the API's semantics changed), on both databases: the billing
page's figures where the seed reads them, its parameters' names and
defaults, `null` where the seed shows null, one exact encoding of every
figure (standings, 429 bodies, alerts), and messages that say the rule."""

import json
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import usage_pb2
from cryptography.fernet import Fernet
from pydantic import SecretStr

from billing_service.clock import FixedClock
from billing_service.config import Settings

from .conftest import make_client
from .end_users.end_user_helpers import PASSWORD
from .gateway_fixtures import gateway_fixture, gateway_url, http_fixture, ok

__all__ = ["gateway_fixture", "http_fixture"]

ORG = "/v1/organizations/org_123"
SANDBOX = "sandbox_compute_hours"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secrets_key": SecretStr(Fernet.generate_key().decode())})


def exact(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a response, its numbers read as exact Decimals."""
    body = json.loads(response.text, parse_float=Decimal)
    assert isinstance(body, dict)
    return body


async def billing_page(http: httpx.AsyncClient) -> None:
    """The README's billing page: a priced plan, a project, 12.5 sandbox
    hours and one AI call, in the clock's month (June 2026)."""
    plan = {
        "key": "team",
        "name": "Team",
        "quotas": {SANDBOX: 20},
        "prices": {
            SANDBOX: {"unit_price": "0.08", "included": "10"},
            "ai_tokens": {"unit_price": "0.00001"},
        },
    }
    ok(await http.post("/v1/plans", json=plan))
    ok(await http.put(f"{ORG}/billing/subscription", json={"plan_key": "team"}))
    ok(await http.put(f"{ORG}/projects/proj_123", json={"name": "Storefront"}))
    recorded = {"primitive": SANDBOX, "quantity_decimal": 12.5, "project_id": "proj_123"}
    ok(await http.post(f"{ORG}/billing/usage:record", json=recorded))
    ai = {"input_tokens": 1500, "output_tokens": 800, "reasoning_tokens": 200, "cost_cents": 0.05}
    ok(await http.post("/v1/projects/proj_123/billing/ai-usage", json=ai))


async def test_the_summary_has_the_figures_where_the_seed_reads_them(
    http: httpx.AsyncClient,
) -> None:
    await billing_page(http)
    usage = exact(await http.get(f"{ORG}/billing/usage-summary?year=2026&month=6"))
    # `usage.sandbox_compute_hours`, `usage.total_cost_cents`, `usage.line_items`
    assert usage[SANDBOX] == Decimal("12.5")
    assert (usage["ai_tokens"], usage["ai_cost_cents"]) == (2500, Decimal("0.05"))
    assert usage["database_compute_hours"] == usage["storage_gb"] == 0
    assert usage["total_cost_cents"] == 22
    assert [(i["name"], i["total_cost"]) for i in usage["line_items"]] == [
        ("AI tokens", Decimal("0.02")),
        ("Sandbox compute", Decimal("0.20")),
    ]
    assert usage["usage"]["meters"][SANDBOX] == Decimal("12.5")  # still nested too

    projects = exact(await http.get(f"{ORG}/billing/usage-by-project?year=2026&month=6"))
    [p] = projects["projects"]
    assert (p["project_name"], p[SANDBOX], p["ai_tokens"]) == ("Storefront", Decimal("12.5"), 2500)


async def test_a_summary_without_a_month_is_this_months(
    http: httpx.AsyncClient, clock: FixedClock
) -> None:
    await billing_page(http)
    now = clock.now()
    this_month = exact(await http.get(f"{ORG}/billing/usage-summary"))
    assert (this_month["year"], this_month["month"]) == (now.year, now.month)
    assert this_month["label"] == "June 2026" and this_month[SANDBOX] == Decimal("12.5")
    projects = exact(await http.get(f"{ORG}/billing/usage-by-project"))
    assert [p["project_id"] for p in projects["projects"]] == ["proj_123"]

    half = await http.get(f"{ORG}/billing/usage-summary", params={"year": 2026})
    assert half.status_code == 400
    assert half.json()["error"]["field"] == "month"


async def test_project_usage_takes_the_seeds_from_and_to(http: httpx.AsyncClient) -> None:
    await billing_page(http)
    seed = exact(
        await http.get(
            "/v1/projects/proj_123/billing/usage", params={"from": "2026-06-01", "to": "2026-06-30"}
        )
    )
    named = exact(
        await http.get(
            "/v1/projects/proj_123/billing/usage",
            params={"from_date": "2026-06-01", "to_date": "2026-06-30"},
        )
    )
    assert seed == named
    assert [(i["item"], i["units"], i["unit_type"]) for i in seed["items"]][-1] == (
        "Sandbox compute",
        Decimal("12.5"),
        "hour",
    )
    both = await http.get(
        "/v1/projects/proj_123/billing/usage",
        params={"from": "2026-06-01", "from_date": "2026-06-01", "to": "2026-06-30"},
    )
    assert both.status_code == 400
    assert "'from' and 'from_date' are one field" in both.json()["error"]["message"]


async def test_a_summary_without_a_subscription_has_the_default_currency(
    http: httpx.AsyncClient,
) -> None:
    summary = exact(await http.get("/v1/users/nobody/billing/usage-summary"))
    assert summary["currency"] == "usd"
    assert summary["total_cost_cents"] == 0 and summary["line_items"] == []


async def test_a_fractional_standing_is_exact_and_unlimited_has_no_remaining(
    http: httpx.AsyncClient, channel: grpc.aio.Channel
) -> None:
    await billing_page(http)
    client = make_client(channel, http.headers["authorization"].removeprefix("Bearer "))
    check = exact(await http.get(f"{ORG}/billing/quotas/{SANDBOX}"))["standing"]
    assert (check["used"], check["limit"], check["remaining"]) == (
        Decimal("12.5"),
        20,
        Decimal("7.5"),
    )
    assert (check["used_decimal"], check["remaining_decimal"]) == (
        Decimal("12.5"),
        Decimal("7.5"),
    )
    usage = exact(await http.get(f"{ORG}/billing/usage"))
    assert usage["usage"][SANDBOX] == usage["usage_decimal"][SANDBOX] == Decimal("12.5")

    unlimited = exact(await http.get(f"{ORG}/billing/quotas/ai_tokens"))["standing"]
    assert unlimited["unlimited"] is True
    assert unlimited["used"] == 2500
    for field in ("limit", "remaining", "limit_decimal", "remaining_decimal"):
        assert unlimited[field] is None, field
    over_grpc = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(organization_id="org_123", primitive="ai_tokens"),
        metadata=client.auth,
    )
    assert over_grpc.standing.unlimited
    assert not over_grpc.standing.HasField("remaining_decimal")
    assert not over_grpc.standing.HasField("limit_decimal")


async def test_the_429_body_shows_figures_as_standings_do(http: httpx.AsyncClient) -> None:
    await billing_page(http)
    over = await http.post(
        f"{ORG}/billing/usage:consume", json={"primitive": SANDBOX, "quantity_decimal": "7.6"}
    )
    assert over.status_code == 429
    error = exact(over)["error"]
    assert (error["used"], error["limit"]) == (Decimal("12.5"), 20)
    assert '"used":12.5,"limit":20' in over.text


async def test_alerts_show_figures_as_numbers(http: httpx.AsyncClient) -> None:
    await billing_page(http)
    ok(await http.post(f"{ORG}/billing/usage:record", json={"primitive": SANDBOX, "quantity": 4}))
    [alert] = exact(await http.get("/v1/usage-alerts"))["alerts"]
    assert (alert["threshold_percent"], alert["used"], alert["limit"]) == (80, Decimal("16.5"), 20)
    assert alert["used_decimal"] == Decimal("16.5")


async def test_appearance_defaults_are_null_as_the_seed_shows(
    http: httpx.AsyncClient, gateway: Any
) -> None:
    user = {"email": "ada@example.com", "password": PASSWORD}
    ok(await http.post("/v1/end-users", json=user))
    signed = ok(await http.post("/v1/end-users:signIn", json=user))
    headers = {"Authorization": f"Bearer {signed['session_token']}"}
    async with httpx.AsyncClient(base_url=gateway_url(gateway), headers=headers) as me:
        prefs = ok(await me.get("/v1/me/preferences"))["preferences"]
        assert prefs["appearance"] == {"theme": "system", "timezone": None, "locale": None}
        set_zone = {"theme": "dark", "timezone": "America/New_York"}
        updated = ok(await me.patch("/v1/me/preferences/appearance", json=set_zone))
        assert updated["preferences"]["appearance"] == {
            "theme": "dark",
            "timezone": "America/New_York",
            "locale": None,
        }
        cleared = ok(await me.patch("/v1/me/preferences/appearance", json={"timezone": ""}))
        assert cleared["preferences"]["appearance"]["timezone"] is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a message, not storage
@pytest.mark.parametrize(
    ("secret_key", "rule"),
    [
        ("sk_test_123", "after sk_test_ a key has 8 to 240 letters and digits"),
        ("sk_test_" + "a" * 20 + "!", "after sk_test_ a key has 8 to 240 letters and digits"),
        ("pk_live_" + "a" * 20, "must be a Stripe secret key (sk_live_ or sk_test_)"),
    ],
)
async def test_a_bad_stripe_key_is_refused_with_the_real_rule(
    http: httpx.AsyncClient, secret_key: str, rule: str
) -> None:
    body = {"secret_key": secret_key, "webhook_secret": "whsec_" + "w" * 24}
    refused = await http.put("/v1/stripe/account", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_argument", "secret_key")
    assert rule in error["message"]
    assert "sk_test_..." not in error["message"] and secret_key not in error["message"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a message, not storage
async def test_a_short_webhook_secret_is_refused_with_the_real_rule(
    http: httpx.AsyncClient,
) -> None:
    body = {"secret_key": "sk_test_" + "k" * 24, "webhook_secret": "whsec_123"}
    refused = await http.put("/v1/stripe/account", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["field"] == "webhook_secret"
    assert "whsec_, then 8 to 240 letters, digits" in error["message"]
    assert "whsec_..." not in error["message"] and "whsec_123" not in error["message"]
