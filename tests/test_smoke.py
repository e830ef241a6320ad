from billing.v1 import account_kit_pb2, plan_pb2, subscription_pb2, usage_pb2

from .conftest import Client


async def test_consume_until_quota(client: Client) -> None:
    await client.kits.UpsertAccountKit(
        account_kit_pb2.UpsertAccountKitRequest(id="k", name="K", primitives=["seo"]),
        metadata=client.auth,
    )
    await client.plans.UpsertPlan(
        plan_pb2.UpsertPlanRequest(key="pro", name="Pro", account_kit_id="k", quotas={"seo": 2}),
        metadata=client.auth,
    )
    await client.subscriptions.SetSubscription(
        subscription_pb2.SetSubscriptionRequest(tenant_id="t1", plan_key="pro"),
        metadata=client.auth,
    )
    for _ in range(2):
        await client.usage.ConsumeQuota(
            usage_pb2.ConsumeQuotaRequest(tenant_id="t1", primitive="seo"), metadata=client.auth
        )
    usage = await client.usage.GetUsage(
        usage_pb2.GetUsageRequest(tenant_id="t1"), metadata=client.auth
    )
    assert dict(usage.usage) == {"seo": 2}
