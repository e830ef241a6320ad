"""Page tokens the service did not issue are INVALID_ARGUMENT on every list,
gRPC and REST, both databases: never a 500."""

import base64

import httpx
import pytest
from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2

from .conftest import Client
from .gateway_fixtures import gateway_fixture, http_fixture  # noqa: F401 - fixtures
from .rpc_errors import assert_invalid_argument

CRAFTED = [
    "eyJhZnRlciI6Ilx1ZDgwMCJ9",  # {"after":"\ud800"}: a lone surrogate
    "eyJhZnRlciI6Ilx1MDAwMCJ9",  # {"after":"\u0000"}: a NUL
    base64.urlsafe_b64encode(b"[" * 5000).decode(),  # deep nesting
    base64.urlsafe_b64encode(b'{"after": 7}').decode(),
    base64.urlsafe_b64encode(b'{"after": "x", "more": 1}').decode(),
    "not base64!",
    "e" * 5000,
]
LISTS = ["/v1/plans", "/v1/account-kits", "/v1/subscriptions"]


@pytest.mark.parametrize("token", CRAFTED)
async def test_crafted_tokens_are_refused_over_grpc(client: Client, token: str) -> None:
    calls = [
        client.plans.ListPlans(plan_pb2.ListPlansRequest(page_token=token), metadata=client.auth),
        client.kits.ListAccountKits(
            account_kit_pb2.ListAccountKitsRequest(page_token=token), metadata=client.auth
        ),
        client.subscriptions.ListSubscriptions(
            subscription_pb2.ListSubscriptionsRequest(page_token=token), metadata=client.auth
        ),
    ]
    for call in calls:
        await assert_invalid_argument(call, "page_token")


@pytest.mark.parametrize("token", CRAFTED)
async def test_crafted_tokens_are_refused_over_rest(http: httpx.AsyncClient, token: str) -> None:
    for path in LISTS:
        response = await http.get(path, params={"page_token": token})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "invalid_argument"


async def test_issued_tokens_still_page_through(client: Client) -> None:
    for key in ("a", "b", "c"):
        await client.plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(key=key, name=key), metadata=client.auth
        )
    first = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(page_size=2), metadata=client.auth
    )
    second = await client.plans.ListPlans(
        plan_pb2.ListPlansRequest(page_size=2, page_token=first.next_page_token),
        metadata=client.auth,
    )
    assert [p.key for p in (*first.plans, *second.plans)] == ["a", "b", "c"]
