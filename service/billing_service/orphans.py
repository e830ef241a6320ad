"""The processes `serve` starts stop when `serve` is gone. Killed outright
(SIGKILL), it cannot tell them: a server left behind would keep its port,
beside the next `serve`'s servers, and a jobs process would keep sending."""

import asyncio
import contextlib
import logging
import os

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 0.5


async def until_stopped(stop: asyncio.Event, parent: int | None, what: str) -> None:
    """Return once `stop` is set, or once `parent` (the `serve` that started
    this process; None: none did) is gone."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_CHECK_SECONDS)
        if parent is not None and os.getppid() != parent:
            log.error("the supervisor (process %d) is gone: stopping %s", parent, what)
            return
