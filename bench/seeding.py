"""Seeding the billing service through its own CLI and gRPC API, and the
request bodies the load generator sends."""

from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc
from billing.v1 import (
    plan_pb2,
    plan_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from loadgen import Target, grpc_frame
from processes import billing_cli

OPERATOR = "bench"
PLAN_KEY = "bench"
PRIMITIVE = "api_call"
# A quota no benchmark can exhaust: every call is admitted, and enforced.
HUGE_QUOTA = 10**12
HOT_TENANT = "hot-tenant"
CHECK_PATH = "/billing.v1.UsageService/CheckQuota"
RATE_LIMIT_PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
CONSUME_PATH = "/billing.v1.UsageService/ConsumeQuota"
_SEED_BATCH = 64


def tenant_name(index: int) -> str:
    """The name of the index-th seeded tenant (the SQL seeding in history.py
    spells it the same way)."""
    return f"tenant-{index}"


def create_operator_and_key(database_url: str) -> str:
    """Create the bench operator and mint it a key with the CLI; return the key."""
    billing_cli(database_url, "operators", "create", OPERATOR)
    output = billing_cli(database_url, "keys", "create", "--operator", OPERATOR)
    return output.strip().splitlines()[-1]


class BillingClient:
    """The few calls the bench makes with a real gRPC client."""

    def __init__(self, address: str, api_key: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._plans = plan_pb2_grpc.PlanServiceStub(self._channel)
        self._subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(self._channel)
        self._usage = usage_pb2_grpc.UsageServiceStub(self._channel)
        self._rate_limit = rls_pb2_grpc.RateLimitServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def upsert_plan(self) -> None:
        self._plans.UpsertPlan(
            plan_pb2.UpsertPlanRequest(
                key=PLAN_KEY,
                name="Benchmark",
                quotas={PRIMITIVE: HUGE_QUOTA},
                period=plan_pb2.PERIOD_MONTH,
            ),
            metadata=self._metadata,
            timeout=30,
        )

    def subscribe(self, tenants: Iterable[str]) -> None:
        """Put every tenant on the bench plan, ACTIVE, a batch of calls at a time."""
        pending: list[grpc.Future] = []
        for tenant in tenants:
            request = subscription_pb2.SetSubscriptionRequest(
                tenant_id=tenant,
                plan_key=PLAN_KEY,
                status=subscription_pb2.SUBSCRIPTION_STATUS_ACTIVE,
            )
            pending.append(
                self._subscriptions.SetSubscription.future(
                    request, metadata=self._metadata, timeout=60
                )
            )
            if len(pending) >= _SEED_BATCH:
                for call in pending:
                    call.result()
                pending.clear()
        for call in pending:
            call.result()

    def used(self, tenant: str) -> int:
        """The tenant's usage of the primitive in the current period (GetUsage)."""
        reply = self._usage.GetUsage(
            usage_pb2.GetUsageRequest(tenant_id=tenant), metadata=self._metadata, timeout=30
        )
        return int(reply.usage.get(PRIMITIVE, 0))

    def total_used(self, tenants: Sequence[str]) -> int:
        return sum(self.used(tenant) for tenant in tenants)

    def check(self, tenant: str) -> usage_pb2.CheckQuotaResponse:
        reply: usage_pb2.CheckQuotaResponse = self._usage.CheckQuota(
            check_request(tenant), metadata=self._metadata, timeout=30
        )
        return reply

    def should_rate_limit(self, tenant: str) -> rls_pb2.RateLimitResponse:
        reply: rls_pb2.RateLimitResponse = self._rate_limit.ShouldRateLimit(
            rate_limit_request(tenant), metadata=self._metadata, timeout=30
        )
        return reply

    def consume(self, tenant: str) -> usage_pb2.ConsumeQuotaResponse:
        reply: usage_pb2.ConsumeQuotaResponse = self._usage.ConsumeQuota(
            consume_request(tenant), metadata=self._metadata, timeout=30
        )
        return reply


def check_request(tenant: str) -> usage_pb2.CheckQuotaRequest:
    return usage_pb2.CheckQuotaRequest(tenant_id=tenant, primitive=PRIMITIVE, quantity=1)


def consume_request(tenant: str) -> usage_pb2.ConsumeQuotaRequest:
    # No idempotency key: h2load repeats the body, and a key would make every
    # repeat a replay.
    return usage_pb2.ConsumeQuotaRequest(tenant_id=tenant, primitive=PRIMITIVE, quantity=1)


def rate_limit_request(tenant: str) -> rls_pb2.RateLimitRequest:
    """What Envoy sends for one request: one descriptor naming the owner and
    the primitive, hits_addend 0 (one)."""
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    return rls_pb2.RateLimitRequest(
        domain="billing",
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[
                    entry(key="tenant_id", value=tenant),
                    entry(key="primitive", value=PRIMITIVE),
                ]
            )
        ],
    )


def write_body(directory: Path, name: str, message: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.grpc"
    path.write_bytes(grpc_frame(message))
    return path


def grpc_headers(api_key: str | None) -> tuple[str, ...]:
    headers = ["content-type: application/grpc", "te: trailers"]
    if api_key is not None:
        headers.append(f"authorization: Bearer {api_key}")
    return tuple(headers)


def billing_target(address: str, path: str, body: Path, api_key: str) -> Target:
    return Target(f"http://{address}{path}", body, grpc_headers(api_key))
