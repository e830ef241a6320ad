"""When the worker stops waiting for company and runs the queued calls as
one batch. Calls reach the event loop one per pass; a batch that waits a
pass or two gathers those already on their way, and one transaction then
serves them all (group commit)."""

import asyncio
from collections.abc import Sized
from typing import Protocol


class BatchForming(Protocol):
    async def gather(self, queue: Sized) -> None:
        """Return when the calls in `queue` should run."""
        ...


class WhileArriving:
    """Yield to the event loop while each pass brings more calls, and for up
    to `quiet_passes` passes that bring none, `max_passes` in all. Batches
    form only where calls do not come alone (router.py), so waiting costs
    one caller at a time nothing; with many, gRPC hands calls to the loop
    some passes apart, and each one that joins saves a round trip to the
    database (docs/performance.md has how long a wait paid)."""

    def __init__(self, quiet_passes: int = 32, max_passes: int = 128) -> None:
        self._quiet_passes = quiet_passes
        self._max_passes = max_passes

    async def gather(self, queue: Sized) -> None:
        quiet = 0
        for _ in range(self._max_passes):
            before = len(queue)
            await asyncio.sleep(0)
            if len(queue) == before:
                quiet += 1
                if quiet >= self._quiet_passes:
                    return


class UntilCount:
    """Wait until `count` calls are queued, or `seconds` passed (tests: batches
    of a chosen size)."""

    def __init__(self, count: int, seconds: float = 0.05) -> None:
        self._count = count
        self._seconds = seconds

    async def gather(self, queue: Sized) -> None:
        deadline = asyncio.get_running_loop().time() + self._seconds
        while len(queue) < self._count and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 (a plain list)
            await asyncio.sleep(0.001)
