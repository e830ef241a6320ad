"""The REST gateway over real HTTP, in front of the real gRPC server, on both
storage backends: the documented routes and bodies, every route, the service's
errors as HTTP statuses and JSON bodies, and the key passed through."""

from typing import Any

import httpx

from .gateway_fixtures import (  # noqa: F401 - fixtures
    anonymous_fixture,
    gateway_fixture,
    http_fixture,
    ok,
    other_http_fixture,
)

PLAN_BODY = {
    "key": "pro",
    "name": "Pro",
    "account_kit_id": "kit-pro",
    "stripe_price_id": "price_123",
    "quotas": {"seo": 1000, "aeo": 250, "email": 500},
    "period": "month",
}
SUBSCRIPTION_BODY = {
    "plan_key": "pro",
    "status": "active",
    "stripe_customer_id": "cus_123",
    "stripe_subscription_id": "sub_123",
    "current_period_end": "2026-07-01T00:00:00Z",
    "assign_kit": True,
}


async def create_kit(http: httpx.AsyncClient, kit_id: str, primitives: list[str]) -> None:
    body = {"id": kit_id, "name": kit_id.title(), "primitives": primitives}
    ok(await http.post("/v1/account-kits", json=body))


async def subscribe(
    http: httpx.AsyncClient, tenant: str, quotas: dict[str, int], primitives: list[str]
) -> None:
    """Tenant on plan 'pro' (kit 'kit-pro' granting `primitives`) with `quotas`."""
    await create_kit(http, "kit-pro", primitives)
    plan = {"key": "pro", "name": "Pro", "account_kit_id": "kit-pro", "quotas": quotas}
    ok(await http.post("/v1/plans", json=plan))
    ok(await http.put(f"/v1/users/{tenant}/billing/subscription", json={"plan_key": "pro"}))


async def consume(
    http: httpx.AsyncClient, tenant: str, primitive: str, quantity: int = 1, **extra: object
) -> httpx.Response:
    body = {"primitive": primitive, "quantity": quantity, **extra}
    return await http.post(f"/v1/users/{tenant}/billing/usage:consume", json=body)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` object of an error response with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    return error


async def test_documented_plan_subscription_and_usage_bodies(http: httpx.AsyncClient) -> None:
    await create_kit(http, "kit-pro", ["aeo", "email", "seo"])

    created = ok(await http.post("/v1/plans", json=PLAN_BODY))
    assert created["created"] is True
    plan = created["plan"]
    assert {key: plan[key] for key in PLAN_BODY} == PLAN_BODY
    assert plan["archived"] is False

    listed = ok(await http.get("/v1/plans"))
    assert listed == {"plans": [plan], "next_page_token": ""}

    # Upserting the same key replaces the plan.
    replaced = ok(
        await http.post("/v1/plans", json={**PLAN_BODY, "quotas": {"seo": 1000, "aeo": 250}})
    )
    assert replaced["created"] is False

    response = await http.put("/v1/users/user-42/billing/subscription", json=SUBSCRIPTION_BODY)
    subscription = ok(response)["subscription"]
    assert subscription["tenant_id"] == "user-42"
    assert subscription["status"] == "active"
    assert subscription["period"] == "month"
    assert subscription["account_kit_id"] == "kit-pro"
    assert subscription["current_period_end"] == "2026-07-01T00:00:00Z"
    assert subscription["period_start"] == "2026-06-01T00:00:00Z"

    ok(await consume(http, "user-42", "seo", 42))
    ok(await consume(http, "user-42", "aeo", 3))
    usage = ok(await http.get("/v1/users/user-42/billing/usage"))
    assert {key: usage[key] for key in ("plan", "status", "period", "quotas", "usage")} == {
        "plan": "pro",
        "status": "active",
        "period": "month",
        "quotas": {"seo": 1000, "aeo": 250},
        "usage": {"seo": 42, "aeo": 3},
    }


async def test_over_quota_is_429_with_exactly_the_documented_body(http: httpx.AsyncClient) -> None:
    await subscribe(http, "t1", {"seo": 1000}, ["seo"])
    ok(await consume(http, "t1", "seo", 1000))

    response = await consume(http, "t1", "seo")

    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Plan quota exceeded for 'seo' (1000/1000 this period)",
            "used": 1000,
            "limit": 1000,
        }
    }


async def test_account_kit_routes(http: httpx.AsyncClient) -> None:
    generated = ok(await http.post("/v1/account-kits", json={"name": "Starter"}))
    kit = generated["account_kit"]
    assert generated["created"] is True
    assert str(kit["id"]).startswith("kit_")
    assert kit["primitives"] == [] and kit["permissions"] == []

    body = {"id": "kit-b", "name": "B", "primitives": ["seo", "aeo"], "permissions": ["x"]}
    ok(await http.post("/v1/account-kits", json=body))

    got = ok(await http.get("/v1/account-kits/kit-b"))
    assert got["account_kit"] == {
        **body,
        "primitives": ["aeo", "seo"],
        "create_time": "2026-06-15T12:00:00Z",
        "update_time": "2026-06-15T12:00:00Z",
    }
    # Ordered by id: "-" sorts before "_".
    first = ok(await http.get("/v1/account-kits", params={"page_size": 1}))
    assert [k["id"] for k in first["account_kits"]] == ["kit-b"]
    rest = ok(
        await http.get(
            "/v1/account-kits", params={"page_size": 1, "page_token": first["next_page_token"]}
        )
    )
    assert [k["id"] for k in rest["account_kits"]] == [kit["id"]]
    assert rest["next_page_token"] == ""


async def test_plan_routes(http: httpx.AsyncClient) -> None:
    # lowerCamelCase names, full enum names and int64 strings are accepted too.
    body = {"key": "basic", "name": "Basic", "quotas": {"seo": "10"}, "period": "PERIOD_WEEK"}
    body["stripePriceId"] = "price_1"
    ok(await http.post("/v1/plans", json=body))
    ok(await http.post("/v1/plans", json={"key": "team", "name": "Team", "period": "YEAR"}))

    plan = ok(await http.get("/v1/plans/basic"))["plan"]
    assert plan == {
        "key": "basic",
        "name": "Basic",
        "account_kit_id": "",
        "stripe_price_id": "price_1",
        "quotas": {"seo": 10},
        "period": "week",
        "archived": False,
        "create_time": "2026-06-15T12:00:00Z",
        "update_time": "2026-06-15T12:00:00Z",
        "prices": {},
        "currency": "usd",
    }

    archived = ok(await http.post("/v1/plans/basic:archive"))["plan"]
    assert archived["archived"] is True
    listed = ok(await http.get("/v1/plans"))
    assert [p["key"] for p in listed["plans"]] == ["team"]
    with_archived = ok(await http.get("/v1/plans", params={"include_archived": "true"}))
    assert [p["key"] for p in with_archived["plans"]] == ["basic", "team"]


async def test_subscription_routes(http: httpx.AsyncClient) -> None:
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro"}))
    ok(await http.post("/v1/plans", json={"key": "max", "name": "Max", "period": "day"}))
    for tenant, plan in (("a", "pro"), ("b", "max"), ("c", "pro")):
        ok(await http.put(f"/v1/users/{tenant}/billing/subscription", json={"plan_key": plan}))

    got = ok(await http.get("/v1/users/b/billing/subscription"))["subscription"]
    # Only plan_key is required; the status defaults to active.
    assert (got["tenant_id"], got["plan_key"], got["status"], got["period"]) == (
        "b",
        "max",
        "active",
        "day",
    )
    assert "current_period_end" not in got  # unset, a field with presence

    on_pro = ok(await http.get("/v1/subscriptions", params={"plan_key": "pro"}))
    assert [s["tenant_id"] for s in on_pro["subscriptions"]] == ["a", "c"]
    page = ok(await http.get("/v1/subscriptions", params={"page_size": "2"}))
    assert [s["tenant_id"] for s in page["subscriptions"]] == ["a", "b"]
    assert page["next_page_token"]


async def test_usage_routes(http: httpx.AsyncClient) -> None:
    await subscribe(http, "t1", {"seo": 10}, ["*"])

    check = ok(await http.get("/v1/users/t1/billing/quotas/seo", params={"quantity": 4}))
    assert check == {
        "allowed": True,
        "reason": None,
        "standing": {
            "used": 0,
            "limit": 10,
            "remaining": 10,
            "unlimited": False,
            "period_start": "2026-06-01T00:00:00Z",
            "period_end": "2026-07-01T00:00:00Z",
            "plan_key": "pro",
            "used_decimal": 0,
            "limit_decimal": 10,
            "remaining_decimal": 10,
        },
    }
    consumed = ok(await consume(http, "t1", "seo", 4, idempotency_key="req-1"))
    assert consumed["replayed"] is False
    assert consumed["standing"]["used"] == 4
    replay = ok(await consume(http, "t1", "seo", 4, idempotency_key="req-1"))
    assert replay["replayed"] is True
    assert replay["usage_event_id"] == consumed["usage_event_id"]

    recorded = await http.post(
        "/v1/users/t1/billing/usage:record",
        json={"primitive": "seo", "quantity": 8, "occurred_at": "2026-06-15T11:00:00Z"},
    )
    assert ok(recorded)["standing"]["used"] == 12
    denied = ok(await http.get("/v1/users/t1/billing/quotas/seo"))
    assert (denied["allowed"], denied["reason"]) == (False, "quota_exceeded")

    refunded = ok(await http.post(f"/v1/usage-events/{consumed['usage_event_id']}:refund"))
    assert refunded["refunded"] is True
    assert refunded["standing"]["used"] == 8
    again = ok(await http.post(f"/v1/usage-events/{consumed['usage_event_id']}:refund", json={}))
    assert again["refunded"] is False

    may = ok(await http.get("/v1/users/t1/billing/usage", params={"as_of": "2026-05-10T00:00:00Z"}))
    assert (may["period_start"], may["usage"]) == ("2026-05-01T00:00:00Z", {"seo": 0})


async def test_tenant_without_subscription_shows_nulls_and_zeros(http: httpx.AsyncClient) -> None:
    usage = ok(await http.get("/v1/users/nobody/billing/usage"))
    assert {key: usage[key] for key in ("plan", "status", "period", "quotas", "usage")} == {
        "plan": "",
        "status": None,
        "period": "month",
        "quotas": {},
        "usage": {},
    }


async def test_path_values_are_url_decoded(http: httpx.AsyncClient) -> None:
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro"}))
    response = await http.put(
        "/v1/users/user%201%40acme/billing/subscription", json={"plan_key": "pro"}
    )
    assert ok(response)["subscription"]["tenant_id"] == "user 1@acme"


async def test_the_key_is_passed_through(
    http: httpx.AsyncClient, other_http: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro"}))

    assert ok(await other_http.get("/v1/plans")) == {"plans": [], "next_page_token": ""}
    error_of(await other_http.get("/v1/plans/pro"), 404)

    missing = await anonymous.get("/v1/plans")
    assert error_of(missing, 401)["code"] == "unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await anonymous.get("/v1/plans", headers={"Authorization": "Bearer bk_nope"})
    assert error_of(wrong, 401)["code"] == "unauthenticated"


async def test_validation_error_is_400_with_the_field(http: httpx.AsyncClient) -> None:
    error = error_of(await http.post("/v1/plans", json={"key": "Not A Key!", "name": "X"}), 400)
    assert error["code"] == "invalid_argument"
    assert error["field"] == "key"
    assert error["message"].startswith("key: ")


async def test_primitive_not_granted_is_403(http: httpx.AsyncClient) -> None:
    await subscribe(http, "t1", {"seo": 10}, ["seo"])
    error = error_of(await consume(http, "t1", "aeo"), 403)
    assert error == {
        "code": "primitive_not_permitted",
        "message": "account kit 'kit-pro' does not grant 'aeo'",
    }


async def test_unknown_resources_are_404(http: httpx.AsyncClient) -> None:
    error = error_of(await http.get("/v1/plans/nope"), 404)
    assert error == {"code": "not_found", "message": "plan 'nope' not found"}
    assert error_of(await http.get("/v1/account-kits/nope"), 404)["code"] == "not_found"
    assert error_of(await http.get("/v1/users/t9/billing/subscription"), 404)["code"] == "not_found"


async def test_idempotency_key_reused_differently_is_409(http: httpx.AsyncClient) -> None:
    await subscribe(http, "t1", {"seo": 10}, ["seo"])
    ok(await consume(http, "t1", "seo", 1, idempotency_key="req-1"))
    error = error_of(await consume(http, "t1", "seo", 2, idempotency_key="req-1"), 409)
    assert error["code"] == "idempotency_key_reused"


async def test_inactive_subscription_is_402(http: httpx.AsyncClient) -> None:
    await subscribe(http, "t1", {"seo": 10}, ["seo"])
    body = {"plan_key": "pro", "status": "canceled"}
    subscription = ok(await http.put("/v1/users/t1/billing/subscription", json=body))
    assert subscription["subscription"]["status"] == "canceled"

    error = error_of(await consume(http, "t1", "seo"), 402)
    assert error["code"] == "subscription_inactive"
    denied = ok(await http.get("/v1/users/t1/billing/quotas/seo"))
    assert (denied["allowed"], denied["reason"]) == (False, "subscription_inactive")


async def test_other_failed_preconditions_are_400(http: httpx.AsyncClient) -> None:
    ok(await http.post("/v1/plans", json={"key": "old", "name": "Old"}))
    ok(await http.post("/v1/plans/old:archive"))
    response = await http.put("/v1/users/t1/billing/subscription", json={"plan_key": "old"})
    assert error_of(response, 400) == {"code": "plan_archived", "message": "plan 'old' is archived"}


async def test_the_readme_plan_change_keeps_the_cycle_and_the_mask_clears_it(
    http: httpx.AsyncClient,
) -> None:
    ok(await http.post("/v1/plans", json={"key": "basic", "name": "Basic", "quotas": {"seo": 3}}))
    ok(await http.post("/v1/plans", json={"key": "pro", "name": "Pro", "quotas": {"seo": 3}}))
    path = "/v1/users/u1/billing/subscription"
    cycle = {
        "billing_cycle_anchor": "2026-01-31T09:30:00Z",
        "current_period_end": "2026-06-30T09:30:00Z",
    }
    first = ok(await http.put(path, json={"plan_key": "basic", **cycle}))["subscription"]

    kept = ok(await http.put(path, json={"plan_key": "pro"}))["subscription"]

    assert kept["plan_key"] == "pro"
    assert {k: kept[k] for k in cycle} == cycle
    assert (kept["period_start"], kept["period_end"]) == (
        first["period_start"],
        first["period_end"],
    )
    # Protobuf's JSON form of a field mask: comma-separated lowerCamelCase paths.
    for mask in ("currentPeriodEnd", "billingCycleAnchor,currentPeriodEnd"):
        cleared = ok(await http.put(path, json={"plan_key": "pro", "update_mask": mask}))
        assert not set(cycle) & set(cleared["subscription"]), (mask, cleared)
    refused = await http.put(path, json={"plan_key": "pro", "update_mask": "status"})
    assert error_of(refused, 400)["code"] == "invalid_argument"
