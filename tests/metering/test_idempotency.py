"""Money counted right, over real gRPC (and the gateway) on both databases:
an AI call is refunded whole and found whole by its key, and an idempotency
key replays only the request it was first used for, on every route."""

from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
from billing.v1 import billing_pb2, usage_pb2

from ..billing.test_billing import ORG, dec, project, summary
from ..conftest import Client
from ..gateway_fixtures import gateway_fixture, http_fixture  # noqa: F401 - fixtures
from ..rpc_errors import refused
from .test_envoy_ratelimit import descriptor, limit
from .usage_helpers import subscribe, timestamp, usage_of

MODEL = "anthropic/claude-sonnet-4"


async def ai_call(client: Client, **fields: Any) -> billing_pb2.RecordAiUsageResponse:
    fields = {"project_id": "proj", "provider_model": MODEL, **fields}
    if "cost_cents" in fields:
        fields["cost_cents"] = dec(fields["cost_cents"])
    response: billing_pb2.RecordAiUsageResponse = await client.billing.RecordAiUsage(
        billing_pb2.RecordAiUsageRequest(**fields), metadata=client.auth
    )
    return response


async def refund(client: Client, event_id: str) -> usage_pb2.RefundUsageResponse:
    response: usage_pb2.RefundUsageResponse = await client.usage.RefundUsage(
        usage_pb2.RefundUsageRequest(usage_event_id=event_id), metadata=client.auth
    )
    return response


async def ai_figures(client: Client) -> tuple[str, str]:
    """The month's AI tokens and cost, as the billing page shows them."""
    got = await summary(client, 2026, 6, ORG)
    return got.usage.ai_tokens.value, got.usage.ai_cost_cents.value


async def assert_key_reused(call: Any) -> None:
    failure = await refused(call)
    assert (failure.code, failure.reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
    ), failure


async def test_refunding_either_event_of_an_ai_call_voids_the_whole_call(client: Client) -> None:
    await project(client, "proj", ORG)
    first = await ai_call(client, input_tokens=1500, output_tokens=500, cost_cents="0.05")
    second = await ai_call(client, input_tokens=100, cost_cents="0.02")
    assert await ai_figures(client) == ("2100", "0.07")
    by_tokens = await refund(client, second.usage_event_id)
    assert by_tokens.refunded
    assert await ai_figures(client) == ("2000", "0.05")  # the cost went with the tokens

    assert len(first.usage_event_ids) == 2 and first.usage_event_ids[0] == first.usage_event_id
    assert list(by_tokens.usage_event_ids) == list(second.usage_event_ids)
    by_cost = await refund(client, first.usage_event_ids[1])
    assert by_cost.refunded and list(by_cost.usage_event_ids) == list(first.usage_event_ids)
    assert await ai_figures(client) == ("0", "0")

    again = await refund(client, first.usage_event_id)
    assert not again.refunded and list(again.usage_event_ids) == list(first.usage_event_ids)
    alone = await ai_call(client, cost_cents="0.03")  # a call without tokens: one event
    assert list(alone.usage_event_ids) == [alone.usage_event_id]
    assert list((await refund(client, alone.usage_event_id)).usage_event_ids) == list(
        alone.usage_event_ids
    )
    assert await ai_figures(client) == ("0", "0")


async def test_an_ai_calls_key_covers_the_whole_call(client: Client) -> None:
    await project(client, "proj", ORG)
    tokens_only = {"input_tokens": 100, "idempotency_key": "a"}
    first = await ai_call(client, **tokens_only)
    # The same key with a cost too is another call, not its missing half.
    await assert_key_reused(ai_call(client, **tokens_only, cost_cents="0.05"))
    again = await ai_call(client, **tokens_only)
    assert again.replayed and list(again.usage_event_ids) == list(first.usage_event_ids)
    assert (again.ai_tokens, again.ai_cost_cents.value) == (100, "0")

    both = {"input_tokens": 100, "cost_cents": "0.05", "idempotency_key": "b"}
    first = await ai_call(client, **both)
    await assert_key_reused(ai_call(client, input_tokens=100, idempotency_key="b"))
    again = await ai_call(client, **both | {"cost_cents": "0.050"})  # the same cost
    assert again.replayed and list(again.usage_event_ids) == list(first.usage_event_ids)
    assert (again.ai_tokens, again.ai_cost_cents.value) == (100, "0.05")

    await ai_call(client, cost_cents="0.01", idempotency_key="c")
    await assert_key_reused(ai_call(client, input_tokens=100, idempotency_key="c"))
    for other in ({"provider_model": "openai/gpt-5"}, {"input_tokens": 50, "output_tokens": 50}):
        await assert_key_reused(ai_call(client, **both | other))
    assert await ai_figures(client) == ("200", "0.06")


async def test_a_usage_key_replays_only_the_same_request(client: Client) -> None:
    await subscribe(client, "t", {"seo": 100})
    june, may = datetime(2026, 6, 10, tzinfo=UTC), datetime(2026, 5, 10, tzinfo=UTC)

    def record(at: datetime | None, **fields: Any) -> Any:
        request = usage_pb2.RecordUsageRequest(
            tenant_id="t", primitive="seo", quantity=2, idempotency_key="r", **fields
        )
        if at is not None:
            request.occurred_at.CopyFrom(timestamp(at))
        return client.usage.RecordUsage(request, metadata=client.auth)

    first = await record(june)
    assert (await record(june)).replayed
    await assert_key_reused(record(may))  # another month
    await assert_key_reused(record(None))  # unset: now
    consume_r = usage_pb2.ConsumeQuotaRequest(
        tenant_id="t", primitive="seo", quantity=2, idempotency_key="r"
    )
    await assert_key_reused(client.usage.ConsumeQuota(consume_r, metadata=client.auth))

    def consume(**fields: Any) -> Any:
        request = usage_pb2.ConsumeQuotaRequest(
            tenant_id="t", primitive="seo", idempotency_key="c", **fields
        )
        return client.usage.ConsumeQuota(request, metadata=client.auth)

    consumed = await consume(quantity=3)
    replayed = await consume(quantity_decimal=dec("3"))  # the same quantity
    assert replayed.replayed and replayed.usage_event_id == consumed.usage_event_id
    await assert_key_reused(consume(quantity=4))
    assert (await usage_of(client, "t"))["seo"] == 2 + 3  # June: the record and the consume
    assert (await usage_of(client, "t", may))["seo"] == 0
    assert first.usage_event_id != consumed.usage_event_id


async def test_a_sidecars_request_id_replays_only_the_same_descriptors(client: Client) -> None:
    await subscribe(client, "t", {"seo": 10, "aeo": 10})
    seo = descriptor(tenant_id="t", primitive="seo", request_id="req-9")
    aeo = descriptor(tenant_id="t", primitive="aeo")
    await limit(client, seo)
    await assert_key_reused(limit(client, seo, aeo))
    await assert_key_reused(limit(client, seo, hits=2))
    # A descriptor that meters nothing does not make it another request.
    await limit(client, descriptor(generic_key="x"), seo)
    assert (await usage_of(client, "t")) == {"seo": 1, "aeo": 0}


async def test_the_gateway_answers_a_reused_key_409_and_lists_an_ai_calls_events(
    http: httpx.AsyncClient,
) -> None:
    body = {"primitive": "seo", "quantity": 1, "idempotency_key": "g"}
    at = {"occurred_at": "2026-06-10T00:00:00Z"}
    first = await http.post("/v1/users/t/billing/usage:record", json=body | at)
    assert first.status_code == 200 and first.json()["replayed"] is False
    reused = await http.post(
        "/v1/users/t/billing/usage:record", json=body | {"occurred_at": "2026-05-10T00:00:00Z"}
    )
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"

    created = await http.put("/v1/organizations/o1/projects/proj", json={"name": "Proj"})
    assert created.status_code == 200, created.text
    ai = {"input_tokens": 10, "cost_cents": "0.01", "idempotency_key": "g2"}
    recorded = (await http.post("/v1/projects/proj/billing/ai-usage", json=ai)).json()
    ids = recorded["usage_event_ids"]
    assert len(ids) == 2 and ids[0] == recorded["usage_event_id"]
    refunded = (await http.post(f"/v1/usage-events/{ids[1]}:refund", json={})).json()
    assert refunded["refunded"] is True and refunded["usage_event_ids"] == ids
    again = await http.post("/v1/projects/proj/billing/ai-usage", json=ai | {"input_tokens": 11})
    assert again.status_code == 409
