"""How long a metered write waits for others to share its transaction.

Group commit happens by itself where the database is slow to answer: calls
that arrive while a batch is in PostgreSQL form the next batch. On SQLite,
called inline, it does not: a lone write is decided and committed before the
next call gets off the network, so every call pays a whole transaction (the
write lock, which the other processes on the file fight for, and its pages
appended to the write-ahead log).

A window closes when the calls it expects have arrived, or after `seconds`
at the most. What to expect is learned from the windows themselves, much as
TCP learns its window: a window that ran out of time expects what it
gathered next time, but at most one fewer than it expected (one thin window
among full ones is no news); after `patience` windows in a row that filled
early, one more. Expecting one call means not waiting at all: each call is
decided alone, and a window is tried again (a probe, one write waiting the
whole time) at most every `probe_interval` seconds, 1 ms in 100 being what
finding out costs a process whose callers come one at a time.

Measured on 2 cores (2026-11-30, two processes, bench/run.py's matrix side
by side with every call decided alone, medians of 3 runs): ConsumeQuota on
SQLite with 16 callers in flight, 13-20% more calls/s (many tenants 4,723 to
5,323, one hot tenant 5,045 to 6,043) and a p99 of 9-10 ms instead of 13-14;
with 64, 2-8% more; with 4 and 8 (outside the matrix), 0-20% more; one caller
at a time and 500 calls/s at a fixed rate, as before. A window that always
waited the whole 1 ms had won more with 16 and 64 callers (30-50%) but lost
with 2 to 8 (down to a quarter of the throughput with 2), where its few
callers had all come long before it closed. PostgreSQL batches by itself
(calls queue while a batch is there): windows there changed nothing beyond
the noise but one caller's p99 (0.9 to 1.6 ms, the probes), so the service
opens them on SQLite only (app.py).
"""

import time
from collections.abc import Callable

# The event loop's timers tick in milliseconds (libuv, under uvloop): a
# shorter window would be no window at all.
DEFAULT_WINDOW_SECONDS = 0.001
PATIENCE = 8
PROBE_INTERVAL_SECONDS = 0.1
MAX_EXPECTED = 256


class CommitWindow:
    """The policy; the batcher keeps the window (hot_path.UsageBatcher)."""

    def __init__(
        self,
        seconds: float = DEFAULT_WINDOW_SECONDS,
        patience: int = PATIENCE,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds <= 0:
            raise ValueError("a commit window must last some time")
        self.seconds = seconds
        self._patience = patience
        self._probe_interval = probe_interval
        self._clock = clock
        self.expected = 1  # calls a window waits for
        self._filled_in_a_row = 0
        self._next_probe = 0.0

    def open(self) -> int | None:
        """For a write that finds nothing queued: the calls its window waits
        for (None: no window, decide it alone)."""
        if self.expected > 1:
            return self.expected
        now = self._clock()
        if now < self._next_probe:
            return None
        self._next_probe = now + self._probe_interval
        return MAX_EXPECTED  # a probe: how many come in the whole time?

    def closed(self, calls: int, filled: bool) -> None:
        """A window closed with `calls` queued; `filled`: before its time."""
        if not filled:
            # One thin window among full ones lowers the expectation by one;
            # a probe's count stands.
            floor = 1 if self.expected == 1 else self.expected - 1
            self.expected = max(floor, min(calls, MAX_EXPECTED))
            self._filled_in_a_row = 0
            return
        self._filled_in_a_row += 1
        if self._filled_in_a_row >= self._patience:
            self._filled_in_a_row = 0
            self.expected = min(self.expected + 1, MAX_EXPECTED)
