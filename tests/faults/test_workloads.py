"""The fault suite's workloads: two service processes on one database under
concurrent load, with plan changes, refunds, same-key retries, short
deadlines and a period ending. Quick in `make test`; minutes
under `make soak` (BILLING_SOAK=1)."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from billing.v1 import plan_pb2, usage_pb2

from ..conftest import Client
from ..metering.usage_helpers import subscribe, timestamp, usage_of
from .harness import (
    DEADLINE,
    WORKERS,
    Tally,
    replicas,
    report,
    stored_event_ids,
    stored_usage_is_exact,
    until,
)

TENANTS = ("t0", "t1", "t2", "t3")


async def test_two_processes_admit_exactly_the_quota(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    quota = 50 * WORKERS
    await subscribe(client, "hot", {"seo": quota})
    tally = Tally()
    async with replicas(client.key, database_url, tmp_path) as (a, b):

        async def consume(replica: Client, n: int) -> None:
            for _ in range(n):
                await tally.call(
                    replica.usage.ConsumeQuota(
                        usage_pb2.ConsumeQuotaRequest(tenant_id="hot", primitive="seo"),
                        metadata=replica.auth,
                        timeout=DEADLINE,
                    )
                )

        per_worker = 2 * quota // (2 * WORKERS) + 10
        await asyncio.gather(
            *(consume(r.client, per_worker) for r in (a, b) for _ in range(WORKERS))
        )
    assert tally.codes["OK"] == quota, tally.figures()
    assert set(tally.codes) == {"OK", "RESOURCE_EXHAUSTED"}
    assert (await usage_of(client, "hot"))["seo"] == quota
    await stored_usage_is_exact(database_url)
    report("two processes, one quota", f"quota {quota}: {tally.figures()}")


class Workload:
    """Random calls on two processes while the quota is only ever lowered;
    every answer is kept with when it was sent and received."""

    def __init__(self, client: Client, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.answers: list[
            tuple[str, float, float, int, int]
        ] = []  # tenant, sent, got, used, limit
        self.lowered: list[tuple[float, int]] = []  # acknowledged at, new limit
        self.acknowledged: set[int] = set()
        self.keys: list[str] = []

    async def lower_quota(self, start: int, stop_at: float) -> None:
        loop = asyncio.get_running_loop()
        limit = start
        while loop.time() < stop_at and limit > 0:
            limit -= 1
            await self.client.plans.UpsertPlan(
                plan_pb2.UpsertPlanRequest(key="pro", name="pro", quotas={"seo": limit}),
                metadata=self.client.auth,
                timeout=DEADLINE,
            )
            self.lowered.append((loop.time(), limit))
            await asyncio.sleep(0.02)

    async def worker(self, replica: Client, stop_at: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            tenant = self.rng.choice(TENANTS)
            roll = self.rng.random()
            sent = loop.time()
            if roll < 0.25:
                request = usage_pb2.CheckQuotaRequest(tenant_id=tenant, primitive="seo")
                answer = await self.tally.call(
                    replica.usage.CheckQuota(request, metadata=replica.auth, timeout=DEADLINE)
                )
                if isinstance(answer, usage_pb2.CheckQuotaResponse):
                    self.keep(tenant, sent, answer.standing)
            elif roll < 0.35 and self.acknowledged:
                event = self.rng.choice(sorted(self.acknowledged))
                await self.tally.call(
                    replica.usage.RefundUsage(
                        usage_pb2.RefundUsageRequest(usage_event_id=str(event)),
                        metadata=replica.auth,
                        timeout=DEADLINE,
                    )
                )
            else:
                await self.write(replica, tenant, sent, record=roll > 0.9)

    async def write(self, replica: Client, tenant: str, sent: float, record: bool) -> None:
        key = ""
        if self.rng.random() < 0.5:
            retry = self.keys and self.rng.random() < 0.3
            key = self.rng.choice(self.keys) if retry else f"k-{self.rng.random()}"
            self.keys.append(key)
        if record:
            rpc = replica.usage.RecordUsage(
                usage_pb2.RecordUsageRequest(
                    tenant_id=tenant, primitive="seo", quantity=1, idempotency_key=key
                ),
                metadata=replica.auth,
                timeout=DEADLINE,
            )
        else:
            rpc = replica.usage.ConsumeQuota(
                usage_pb2.ConsumeQuotaRequest(
                    tenant_id=tenant, primitive="seo", idempotency_key=key
                ),
                metadata=replica.auth,
                timeout=DEADLINE,
            )
        answer = await self.tally.call(rpc)
        if isinstance(answer, usage_pb2.ConsumeQuotaResponse | usage_pb2.RecordUsageResponse):
            self.acknowledged.add(int(answer.usage_event_id))
            if not answer.replayed:
                self.keep(tenant, sent, answer.standing)

    def keep(self, tenant: str, sent: float, standing: usage_pb2.QuotaStanding) -> None:
        got = asyncio.get_running_loop().time()
        if not standing.unlimited:
            self.answers.append((tenant, sent, got, standing.used, standing.limit))

    def no_older_terms(self) -> None:
        """The quota only goes down: an answer on a counter sent after another
        was received never carries a higher (older) limit, nor one above a
        lowering acknowledged before it was sent."""
        for tenant in TENANTS:
            mine = sorted((a for a in self.answers if a[0] == tenant), key=lambda a: a[1])
            lowest_seen = None
            received = sorted(mine, key=lambda a: a[2])
            index = 0
            for _, sent, _, _, limit in mine:
                while index < len(received) and received[index][2] < sent:
                    seen = received[index][4]
                    lowest_seen = seen if lowest_seen is None else min(lowest_seen, seen)
                    index += 1
                assert lowest_seen is None or limit <= lowest_seen, (tenant, sent, limit)
                acked = [limit_ for at, limit_ in self.lowered if at < sent]
                assert not acked or limit <= acked[-1], (tenant, sent, limit, acked[-1])


async def test_a_random_workload_with_plan_changes_stays_exact(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    start = 10_000
    for tenant in TENANTS:
        await subscribe(client, tenant, {"seo": start})
    workload = Workload(client, seed=26)
    async with replicas(client.key, database_url, tmp_path) as (a, b):
        stop_at = asyncio.get_running_loop().time() + (until() - until(0))
        await asyncio.gather(
            workload.lower_quota(start, stop_at),
            *(workload.worker(r.client, stop_at) for r in (a, b) for _ in range(WORKERS)),
        )
    workload.no_older_terms()
    assert workload.acknowledged <= await stored_event_ids(database_url)
    await stored_usage_is_exact(database_url)
    report(
        "random workload",
        f"{len(workload.answers)} answers with a limit, {len(workload.lowered)} quota changes, "
        f"{len(workload.acknowledged)} events acknowledged; {workload.tally.figures()}",
    )


async def test_short_deadlines_with_same_key_retries_count_each_key_once(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    await subscribe(client, "hot", {"seo": 10**9})
    tally = Tally()
    keys = [f"req-{i}" for i in range(40 * WORKERS)]
    async with replicas(client.key, database_url, tmp_path) as (a, b):

        async def until_answered(key: str, replica: Client) -> None:
            for deadline in (0.001, 0.005, 0.02, 0.05, DEADLINE):
                answer = await tally.call(
                    replica.usage.ConsumeQuota(
                        usage_pb2.ConsumeQuotaRequest(
                            tenant_id="hot", primitive="seo", idempotency_key=key
                        ),
                        metadata=replica.auth,
                        timeout=deadline,
                    )
                )
                if not isinstance(answer, grpc.aio.AioRpcError):
                    return
            raise AssertionError(f"{key} never answered")

        await asyncio.gather(
            *(until_answered(key, (a, b)[i % 2].client) for i, key in enumerate(keys))
        )
    assert (await usage_of(client, "hot"))["seo"] == len(keys)
    await stored_usage_is_exact(database_url)
    report("short deadlines", f"{len(keys)} keys: {tally.figures()}")


async def test_a_period_ending_under_load(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    """An anchored daily period ends two seconds into the load: each event
    lands in the period of its instant, and the new period starts at 0."""
    tally = Tally()
    async with replicas(client.key, database_url, tmp_path) as (a, b):
        # The end is set once the replicas serve: starting them may take
        # seconds on a loaded machine.
        end = datetime.now(UTC) + timedelta(seconds=2)
        await subscribe(client, "t", {"seo": 10**9}, period=plan_pb2.PERIOD_DAY, anchor=end)
        stop_at = asyncio.get_running_loop().time() + 3.5

        async def load(replica: Client) -> None:
            while asyncio.get_running_loop().time() < stop_at:
                await tally.call(
                    replica.usage.ConsumeQuota(
                        usage_pb2.ConsumeQuotaRequest(tenant_id="t", primitive="seo"),
                        metadata=replica.auth,
                        timeout=DEADLINE,
                    )
                )

        await asyncio.gather(*(load(r.client) for r in (a, b) for _ in range(WORKERS)))
    before = await usage_of_at(client, "t", end - timedelta(milliseconds=1))
    after = await usage_of_at(client, "t", end)
    assert before + after == tally.codes["OK"] and before > 0 and after > 0
    await stored_usage_is_exact(database_url)
    report("a period ending", f"{before} calls before the end, {after} after")


async def usage_of_at(client: Client, tenant: str, at: datetime) -> int:
    request = usage_pb2.GetUsageRequest(tenant_id=tenant)
    request.as_of.CopyFrom(timestamp(at))
    response = await client.usage.GetUsage(request, metadata=client.auth, timeout=DEADLINE)
    return int(response.usage["seo"])
