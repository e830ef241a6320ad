"""Checkpoints of SQLite's write-ahead log, in a thread beside the event loop.

By default SQLite copies the WAL back into the database file inside the very
commit that takes the log past 1,000 pages: every few hundred hot-path
commits, one of them also copies megabytes and syncs two files, on the event
loop, stalling every call in flight. That doubled the average cost of a
commit. The hot path's connection turns it off (`wal_autocheckpoint=0`) and
this thread checkpoints instead, on its own connection; sqlite3 releases the
GIL while it copies and syncs.

A PASSIVE checkpoint never waits for, nor blocks, writers or readers. But the
log only starts over from its beginning when a writer finds every frame of it
copied, which under a steady stream of commits a PASSIVE checkpoint never
achieves (new frames land while it runs). So once the log is past
`restart_pages`, the thread asks for a RESTART checkpoint: it takes the write
lock for the moment it needs to copy the few frames the PASSIVE one left, and
the next commit writes from the start of the log again. Writers that find the
lock taken retry the batch after a pause (metering.backend.RetryBatch); the checkpoint
waits `busy_ms` at most for a writer or reader to finish, else it tries again
on a later tick.
"""

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class WalCheckpointer:
    def __init__(
        self,
        path: str,
        interval_seconds: float = 0.05,
        restart_pages: int = 4096,
        busy_ms: int = 20,
    ) -> None:
        self._path = path
        self._interval = interval_seconds
        self._restart_pages = restart_pages
        self._busy_ms = busy_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="sqlite-wal-checkpoints", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            while not self._stop.wait(self._interval):
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > self._restart_pages:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as error:
            # The next tick tries again; a database that stays unwritable
            # shows up on the hot path itself.
            log.warning("WAL checkpoint failed: %s", error)
