"""What keeps the metering core ready for a database sharded by operator
(docs/scale.md): the calls of several operators that arrive together are
still answered together, but each operator's in a transaction of its own."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from billing_service.app import App
from billing_service.clock import FixedClock
from billing_service.domain.models import Period, SubscriptionStatus
from billing_service.domain.owners import Owner
from billing_service.domain.policy import enforcement
from billing_service.metering.backend import MeteringBackend, Transaction
from billing_service.metering.batch_forming import UntilCount
from billing_service.metering.batcher import Batcher
from billing_service.metering.engines import open_backend
from billing_service.metering.quota_engine import QuotaEngine
from billing_service.metering.router import FixedRouter, Route
from billing_service.metering.terms_cache import TermsCache

from .invariants import counters_equal_events

T = TypeVar("T")
OPERATORS = ("acme", "globex", "initech")
CALLS_EACH = 3


class OperatorsPerTransaction:
    """The real backend, noting the operators each transaction is opened for."""

    def __init__(self, backend: MeteringBackend) -> None:
        self._backend = backend
        self.seen: list[list[int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def transaction(
        self,
        operator_ids: Sequence[int],
        write: bool,
        work: Callable[[Transaction], Awaitable[T]],
    ) -> T:
        self.seen.append(list(operator_ids))
        return await self._backend.transaction(operator_ids, write, work)


async def test_a_batch_never_mixes_operators_in_one_transaction(
    app: App, clock: FixedClock
) -> None:
    operator_ids = []
    for name in OPERATORS:
        operator = await app.store.create_operator(name, clock.now())
        await app.catalog.upsert_plan(operator.id, "p", "P", "", "", {"seo": 100}, Period.MONTH)
        await app.subscriptions.set(
            operator.id, Owner.user("t"), "p", SubscriptionStatus.ACTIVE, "", "", None, False
        )
        operator_ids.append(operator.id)
    recording = OperatorsPerTransaction(open_backend(app.settings.database_url))
    batcher = Batcher(
        cast(MeteringBackend, recording),
        TermsCache(enforcement, 100),
        FixedRouter(Route.QUEUED),
        # Generous: the batch waits for every call, however loaded the machine.
        forming=UntilCount(len(OPERATORS) * CALLS_EACH, seconds=60),
    )
    batches: list[int] = []
    batcher.on_batch = lambda size, _waited: batches.append(size)
    engine = QuotaEngine(app.store, batcher, clock)
    try:
        answers = await asyncio.gather(
            *(
                engine.consume(op, Owner.user("t"), "seo", 1, "")
                for op in operator_ids
                for _ in range(CALLS_EACH)
            )
        )
    finally:
        await batcher.close()
    assert sorted(a.standing.used for a in answers) == sorted(
        [n * 1_000_000 for n in range(1, CALLS_EACH + 1)] * len(OPERATORS)
    )
    assert batches == [len(OPERATORS) * CALLS_EACH]  # one batch of every operator's calls
    assert sorted(tuple(ops) for ops in recording.seen) == [(op,) for op in operator_ids]
    assert await counters_equal_events(app.settings.database_url)
