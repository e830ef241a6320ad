"""Every Stripe route of the REST gateway, served against the fake Stripe:
each documented operation answers 200 with its response message, and
Stripe's refusals keep their request id in the error body."""

from typing import Any

import httpx

from ..fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from ..gateway_fixtures import gateway_fixture, http_fixture, ok
from .stripe_fixtures import Events, fake_fixture, settings_fixture, sign

__all__ = ["fake_fixture", "gateway_fixture", "http_fixture", "settings_fixture"]

OWNER_ROUTES: tuple[tuple[str, str, dict[str, str] | None, dict[str, str]], ...] = (
    ("POST", "/billing/customer:ensure", {"email": "a@example.com"}, {}),
    ("POST", "/billing/checkout-sessions", {"return_url": "https://app.example/b"}, {}),
    ("POST", "/billing/portal-sessions", {"return_url": "https://app.example/b"}, {}),
    ("GET", "/billing", None, {}),
    ("GET", "/billing/status", None, {}),
    ("GET", "/billing/can-create-api-key", None, {}),
    (
        "GET",
        "/billing/meter-usage",
        None,
        {"start_time": "2026-06-01T00:00:00Z", "end_time": "2026-06-02T00:00:00Z"},
    ),
)


async def test_every_stripe_route_is_served(http: httpx.AsyncClient, fake: FakeStripe) -> None:
    document = ok(await http.get("/openapi.json"))
    served: set[str] = set()

    async def call(method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        if body is not None:
            kwargs["json"] = body
        response = await http.request(method, path, **kwargs)
        template = next(
            (t, item[method.lower()])
            for t, item in document["paths"].items()
            if method.lower() in item and _matches(t, path)
        )
        served.add(template[1]["operationId"])
        return ok(response)

    account = await call(
        "PUT", "/v1/stripe/account", {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET}
    )
    assert set(account["account"]) >= {"webhook_path", "api_key_rule", "livemode"}
    assert SECRET_KEY not in str(account)
    await call("GET", "/v1/stripe/account")
    for prefix in ("/v1/users/u1", "/v1/organizations/o1"):
        for method, suffix, body, query in OWNER_ROUTES:
            await call(method, prefix + suffix, body, params=query)
    status = await call("GET", "/v1/users/u1/billing/status")
    assert status == {
        "has_stripe_account": True,
        "stripe_subscription_id": "",
        "status": None,
        "has_payment_method": False,
    }
    await call("GET", "/v1/stripe/events", params={"outcome": "ignored"})
    await call("GET", "/v1/stripe/meter-outbox")
    operator = account["account"]["webhook_path"].rsplit("/", 1)[1]
    payload = Events().make("charge.refunded", {"id": "ch_1"})
    answer = await call(
        "POST",
        f"/v1/stripe/webhooks/{operator}",
        content=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    )
    assert answer["outcome"] == "ignored"
    every = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if operation["tags"][0] in ("StripeService", "StripeWebhookService")
    }
    assert served == every


async def test_stripes_refusal_keeps_its_request_id_over_rest(
    http: httpx.AsyncClient, fake: FakeStripe
) -> None:
    await http.put(
        "/v1/stripe/account", json={"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET}
    )
    fake.state.api_key = "sk_test_other"
    refused = await http.post("/v1/users/u1/billing/customer:ensure", json={})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "stripe_key_rejected"
    assert error["stripe_request_id"].startswith("req_fake")
    fake.state.api_key = SECRET_KEY
    fake.fail(503, times=5)
    unavailable = await http.post("/v1/users/u1/billing/customer:ensure", json={})
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "stripe_unavailable"


def _matches(template: str, path: str) -> bool:
    parts, actual = template.split("/"), path.split("/")
    return len(parts) == len(actual) and all(
        p == a or (p[0] == "{" and p[-1] == "}") or ("}:" in p and a.endswith(p.split("}")[1]))
        for p, a in zip(parts, actual, strict=True)
    )
