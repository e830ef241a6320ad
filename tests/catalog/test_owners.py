"""Owners: every usage and subscription RPC takes a user
(`user_id`, or `tenant_id`, its older name) or an organization, exactly one;
an organization and a user of the same id are different owners."""

from typing import Any

import grpc
import httpx
import pytest
from billing.v1 import plan_pb2, subscription_pb2, usage_pb2

from ..conftest import Client
from ..gateway_fixtures import gateway_fixture, http_fixture  # noqa: F401
from ..rpc_errors import assert_invalid_argument, failure_of

OWNERS: list[dict[str, Any]] = [{"tenant_id": "42"}, {"user_id": "42"}, {"organization_id": "42"}]


async def _plan(client: Client, limit: int) -> None:
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", quotas={"seo": limit}),
        metadata=client.auth,
    )


async def test_a_user_and_an_organization_of_the_same_id_are_two_owners(client: Client) -> None:
    await _plan(client, 2)
    org: dict[str, Any] = {"organization_id": "42"}
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(plan_key="pro", **org), metadata=client.auth
    )
    for _ in range(2):
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(primitive="seo", **org), metadata=client.auth
        )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(primitive="seo", **org), metadata=client.auth
        )
    assert failure_of(refused.value).reason == "RATE_LIMITED"

    # The user 42 has no subscription: metered, never limited, its own count.
    user_owners: list[dict[str, Any]] = [{"user_id": "42"}, {"tenant_id": "42"}]
    for owner in user_owners:
        answer = await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(primitive="seo", **owner), metadata=client.auth
        )
        assert answer.standing.unlimited
    usage = await client.usage.GetUsage(usage_pb2.GetUsageRequest(**org), metadata=client.auth)
    assert dict(usage.usage) == {"seo": 2}
    user = await client.usage.GetUsage(
        usage_pb2.GetUsageRequest(user_id="42"), metadata=client.auth
    )
    assert dict(user.usage) == {"seo": 2}

    got = await client.subscriptions.GetSubscription(
        subscription_pb2.GetSubscriptionRequest(**org), metadata=client.auth
    )
    assert (got.subscription.organization_id, got.subscription.user_id) == ("42", "")
    assert got.subscription.tenant_id == ""
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(user_id="42"), metadata=client.auth
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "user '42'" in (missing.value.details() or "")


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: next(iter(o)))
async def test_every_owner_field_works_on_every_rpc(client: Client, owner: dict[str, Any]) -> None:
    await _plan(client, 10)
    set_ = await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(plan_key="pro", **owner), metadata=client.auth
    )
    expected = ("", "", "42") if "organization_id" in owner else ("42", "42", "")
    sub = set_.subscription
    assert (sub.tenant_id, sub.user_id, sub.organization_id) == expected
    check = await client.usage.CheckQuota(
        usage_pb2.CheckQuotaRequest(primitive="seo", **owner), metadata=client.auth
    )
    assert check.allowed and check.standing.limit == 10
    await client.usage.ConsumeQuota(
        usage_pb2.ConsumeQuotaRequest(primitive="seo", **owner), metadata=client.auth
    )
    recorded = await client.usage.RecordUsage(
        usage_pb2.RecordUsageRequest(primitive="seo", quantity=3, **owner), metadata=client.auth
    )
    assert recorded.standing.used == 4
    usage = await client.usage.GetUsage(usage_pb2.GetUsageRequest(**owner), metadata=client.auth)
    assert dict(usage.usage) == {"seo": 4}
    listed = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(), metadata=client.auth
    )
    assert [s.organization_id or s.user_id for s in listed.subscriptions] == ["42"]


BAD_OWNERS: list[tuple[dict[str, Any], str]] = [
    ({}, "user_id"),
    ({"user_id": "u", "organization_id": "o"}, "organization_id"),
    ({"tenant_id": "u", "user_id": "u"}, "user_id"),
    ({"organization_id": "a/b"}, "organization_id"),
    ({"user_id": " lead"}, "user_id"),
]


@pytest.mark.parametrize(("owner", "field"), BAD_OWNERS)
async def test_neither_or_both_owners_is_invalid_and_stores_nothing(
    client: Client, owner: dict[str, Any], field: str
) -> None:
    await _plan(client, 10)
    auth = client.auth
    calls: list[Any] = [
        client.usage.CheckQuota(
            usage_pb2.CheckQuotaRequest(primitive="seo", **owner), metadata=auth
        ),
        client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(primitive="seo", **owner), metadata=auth
        ),
        client.usage.RecordUsage(
            usage_pb2.RecordUsageRequest(primitive="seo", quantity=1, **owner), metadata=auth
        ),
        client.usage.GetUsage(usage_pb2.GetUsageRequest(**owner), metadata=auth),
        client.subscriptions.SetSubscription(
            subscription_pb2.SetSubscriptionRequest(plan_key="pro", **owner), metadata=auth
        ),
        client.subscriptions.GetSubscription(
            subscription_pb2.GetSubscriptionRequest(**owner), metadata=auth
        ),
    ]
    for call in calls:
        await assert_invalid_argument(call, field)
    listed = await client.subscriptions.ListSubscriptions(
        subscription_pb2.ListSubscriptionsRequest(), metadata=client.auth
    )
    assert list(listed.subscriptions) == []


async def test_organizations_have_the_users_routes(http: httpx.AsyncClient) -> None:
    await http.post("/v1/plans", json={"key": "pro", "name": "Pro", "quotas": {"seo": 1}})
    put = await http.put("/v1/organizations/acme/billing/subscription", json={"plan_key": "pro"})
    assert put.status_code == 200, put.text
    assert put.json()["subscription"]["organization_id"] == "acme"
    consumed = await http.post(
        "/v1/organizations/acme/billing/usage:consume", json={"primitive": "seo"}
    )
    assert consumed.status_code == 200, consumed.text
    refused = await http.post(
        "/v1/organizations/acme/billing/usage:consume", json={"primitive": "seo"}
    )
    assert refused.status_code == 429
    # The user acme is another owner.
    user = await http.post("/v1/users/acme/billing/usage:consume", json={"primitive": "seo"})
    assert user.status_code == 200
    usage = await http.get("/v1/organizations/acme/billing/usage")
    assert usage.json()["usage"] == {"seo": 1}
    both = await http.post(
        "/v1/organizations/acme/billing/usage:consume",
        json={"primitive": "seo", "user_id": "acme"},
    )
    assert both.status_code == 400
    # The later of the fields, in the order tenant_id, user_id, organization_id.
    assert both.json()["error"]["field"] == "organization_id"
