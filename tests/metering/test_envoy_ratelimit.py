"""Envoy's rate-limit service (ShouldRateLimit) with Envoy's own protos from
xds-protos, over real gRPC."""

from typing import Any

import grpc
import pytest
from billing.v1 import plan_pb2, subscription_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import wrappers_pb2

from ..conftest import Client
from .usage_helpers import subscribe, usage_of

Response: Any = rls_pb2.RateLimitResponse


def descriptor(hits: int | None = None, **entries: str) -> Any:
    d = ratelimit_pb2.RateLimitDescriptor(
        entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()
        ]
    )
    if hits is not None:
        d.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=hits))
    return d


async def limit(client: Client, *descriptors: Any, hits: int = 0) -> Any:
    stub = rls_pb2_grpc.RateLimitServiceStub(client.channel)
    request = rls_pb2.RateLimitRequest(domain="billing", descriptors=descriptors, hits_addend=hits)
    return await stub.ShouldRateLimit(request, metadata=client.auth)


async def test_a_descriptor_is_counted_until_its_limit(client: Client) -> None:
    await subscribe(client, "t", {"seo": 3}, period=plan_pb2.PERIOD_DAY)
    codes = []
    for _ in range(4):
        response = await limit(client, descriptor(tenant_id="t", primitive="seo"))
        codes.append(response.overall_code)
    assert codes == [Response.OK] * 3 + [Response.OVER_LIMIT]
    status = response.statuses[0]
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.unit == Response.RateLimit.DAY
    assert status.limit_remaining == 0
    assert 0 < status.duration_until_reset.seconds <= 86_400
    assert (await usage_of(client, "t"))["seo"] == 3


async def test_a_quota_beyond_32_bits_is_shown_as_envoys_largest_value(client: Client) -> None:
    # Envoy's requests_per_unit and limit_remaining are uint32 (found by the bench's 10^12 quota).
    await subscribe(client, "t", {"seo": 10**12})
    response = await limit(client, descriptor(tenant_id="t", primitive="seo"))
    assert response.overall_code == Response.OK
    status = response.statuses[0]
    assert status.current_limit.requests_per_unit == status.limit_remaining == 2**32 - 1
    assert (await usage_of(client, "t"))["seo"] == 1


async def test_descriptors_are_counted_all_or_none(client: Client) -> None:
    await subscribe(client, "t", {"seo": 10, "aeo": 1})
    both = (descriptor(tenant_id="t", primitive="seo"), descriptor(tenant_id="t", primitive="aeo"))
    first = await limit(client, *both)
    second = await limit(client, *both)
    assert first.overall_code == Response.OK
    assert second.overall_code == Response.OVER_LIMIT
    assert [s.code for s in second.statuses] == [Response.OK, Response.OVER_LIMIT]
    assert await usage_of(client, "t") == {"seo": 1, "aeo": 1}  # the second counted nothing


async def test_hits_addend_of_the_request_and_of_a_descriptor(client: Client) -> None:
    await subscribe(client, "t", {"seo": 10})
    await limit(client, descriptor(tenant_id="t", primitive="seo"), hits=4)
    await limit(client, descriptor(hits=2, tenant_id="t", primitive="seo"), hits=4)
    await limit(client, descriptor(hits=0, user_id="t", primitive="seo"))  # 0 means 1
    assert (await usage_of(client, "t"))["seo"] == 7


async def test_unknown_tenants_are_metered_not_limited(client: Client) -> None:
    response = await limit(client, descriptor(tenant_id="nobody", primitive="seo"), hits=1000)
    assert response.overall_code == Response.OK
    assert not response.statuses[0].HasField("current_limit")
    assert (await usage_of(client, "nobody"))["seo"] == 1000


async def test_an_inactive_subscription_is_over_limit(client: Client) -> None:
    await subscribe(client, "t", {"seo": 10}, status=subscription_pb2.SUBSCRIPTION_STATUS_CANCELED)
    response = await limit(client, descriptor(tenant_id="t", primitive="seo"))
    assert response.overall_code == Response.OVER_LIMIT


async def test_descriptors_without_owner_and_primitive_are_not_metered(client: Client) -> None:
    response = await limit(client, descriptor(path="/x"), descriptor(primitive="seo"))
    assert response.overall_code == Response.OK and len(response.statuses) == 2


async def test_a_request_id_counts_a_retry_once(client: Client) -> None:
    await subscribe(client, "t", {"seo": 10})
    for _ in range(3):
        await limit(client, descriptor(tenant_id="t", primitive="seo", request_id="req-1"))
    assert (await usage_of(client, "t"))["seo"] == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_sidecar_without_key_is_refused(client: Client) -> None:
    stub = rls_pb2_grpc.RateLimitServiceStub(client.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="billing"))
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
