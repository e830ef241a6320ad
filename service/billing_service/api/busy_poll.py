"""Busy polling: the event loop kept awake for a moment around each call.

Between one call's answer and the next (a caller at a time), or while a call
waits for PostgreSQL, the event loop has nothing to do and sleeps in
epoll_wait. What wakes it (the next request, handed over by gRPC's polling
thread, or the database's reply) then waits for the kernel to run the thread
again; on a virtual machine such a wake-up costs tens of microseconds, several
times per call. With busy polling on (BILLING_BUSY_POLL_US), the loop keeps
polling for that long after a call starts or ends: a callback that schedules
itself again keeps each pass of the loop from blocking, so what comes is
picked up at once.

Polling spends a core's time, which pays only where the next call comes
before the window is out (a caller that sends its next call on the answer of
the last, a database that answers within it) and where nobody else wants
that core. So it polls only while most calls come within two windows of the
answer before them (a moving average of those that did, over about
1/_SOON_WEIGHT calls): callers that come at their own pace, milliseconds
apart, would find the loop asleep anyway, and polling for them only takes a
core from others. And it watches what polling costs others: the time its
thread spent ready to run but waiting for a core while it polled (the
run-queue delay in /proc/thread-self/schedstat), near zero on a core nobody
else wants. When that is more than _MAX_WAIT_SHARE of the time polled,
another thread wants the core (the service's other processes, PostgreSQL's
backends, a client, a neighbour), and polling stops for _FIRST_BACKOFF_S,
twice as long each time in a row, up to _LAST_BACKOFF_S. Measured on 2 cores
in docs/performance.md ("Busy polling").
"""

import asyncio
import logging
import os
import time

log = logging.getLogger(__name__)

_SCHEDSTAT = "/proc/thread-self/schedstat"  # ns on the CPU, ns waiting for one, slices
_LOOK_EVERY_S = 0.001  # how much polling is summed before a verdict
# Of the time polled, the share spent waiting for a core that means another
# thread wants it: with nobody else about, about 1%; against another busy
# thread on the same core, a third to a half.
_MAX_WAIT_SHARE = 0.1
# Polling while at least this share of calls come within _SOON_WINDOWS windows
# of the answer before them (a moving average, each call weighing
# _SOON_WEIGHT). Two windows, not one: without polling, the time between an
# answer and the next call includes the wake-ups that polling saves (one
# caller at a time on 2 cores: about 350 us without, 250 with).
_SOON_WINDOWS = 2
_MIN_SOON_SHARE = 0.5
_SOON_WEIGHT = 1 / 16
_FIRST_BACKOFF_S = 0.1
_LAST_BACKOFF_S = 1.6


class BusyPoll:
    """Keeps the event loop polling for `window_s` after a call starts and
    after it ends, while calls come soon enough for that to pay.

    Created, told and run on the event loop's thread only (the guard tells it
    as each RPC starts and ends)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._answered_at = 0.0  # perf_counter() of the last call's end
        self.soon_share = 0.0  # of calls that came within _SOON_WINDOWS windows of the last answer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._schedstat: int | None = None  # the loop thread's, opened when polling first starts
        self._off = False  # no schedstat to watch: never polls
        self._polling = False
        self._until = 0.0  # polling stops at this perf_counter()
        self._paused_until = 0.0  # backed off until then
        self._backoff_s = _FIRST_BACKOFF_S
        # Since polling last started (or was last summed up):
        self._started = 0.0
        self._waited_at_start = 0
        # Summed over the polling since the last verdict:
        self._polled_s = 0.0
        self._waited_ns = 0
        self.backoffs = 0  # times it backed off

    def call_started(self) -> None:
        """A call has come: poll through its wait, if calls come soon enough."""
        now = time.perf_counter()
        if self._answered_at:
            soon = now - self._answered_at <= _SOON_WINDOWS * self.window_s
            self.soon_share += (soon - self.soon_share) * _SOON_WEIGHT
            self._answered_at = 0.0
        self._touch(now)

    def call_ended(self) -> None:
        """A call is answered: poll for the next, if calls come soon enough."""
        now = time.perf_counter()
        self._answered_at = now
        self._touch(now)

    def _touch(self, now: float) -> None:
        """Poll for the next `window_s` (unless not worth it, or backed off)."""
        if self.soon_share < _MIN_SOON_SHARE:
            return
        self._until = now + self.window_s
        if self._polling or now < self._paused_until or self._off:
            return
        if self._loop is None and not self._open():
            return
        assert self._loop is not None
        self._polling = True
        self._started, self._waited_at_start = now, self._waited()
        self._loop.call_soon(self._poll)

    def close(self) -> None:
        self._off, self._polling = True, False
        if self._schedstat is not None:
            os.close(self._schedstat)
            self._schedstat = None

    def _open(self) -> bool:
        try:
            self._schedstat = os.open(_SCHEDSTAT, os.O_RDONLY)
            self._loop = asyncio.get_running_loop()
            self._waited()
        except (OSError, ValueError, IndexError):
            log.warning("busy polling is off: %s cannot be read", _SCHEDSTAT)
            self.close()
            return False
        return True

    def _waited(self) -> int:
        """ns the loop's thread has spent ready to run, waiting for a core."""
        assert self._schedstat is not None
        return int(os.pread(self._schedstat, 64, 0).split()[1])

    def _poll(self) -> None:
        if not self._polling:
            return  # closed
        now = time.perf_counter()
        if now >= self._until:
            self._polling = False
            self._sum_up(now)
        elif now - self._started >= _LOOK_EVERY_S:
            self._sum_up(now)
            if self._polling:
                self._started, self._waited_at_start = now, self._waited()
        if self._polling:
            assert self._loop is not None
            self._loop.call_soon(self._poll)

    def _sum_up(self, now: float) -> None:
        """Add the polling since it started to the sums; once they hold
        _LOOK_EVERY_S of it, back off if it kept another thread waiting."""
        self._polled_s += now - self._started
        self._waited_ns += self._waited() - self._waited_at_start
        if self._polled_s < _LOOK_EVERY_S:
            return
        contended = self._waited_ns > _MAX_WAIT_SHARE * self._polled_s * 1e9
        self._polled_s, self._waited_ns = 0.0, 0
        if not contended:
            self._backoff_s = _FIRST_BACKOFF_S  # a quiet verdict ends a run of back-offs
            return
        self._polling = False
        self._paused_until = now + self._backoff_s
        self._backoff_s = min(2 * self._backoff_s, _LAST_BACKOFF_S)
        self.backoffs += 1
