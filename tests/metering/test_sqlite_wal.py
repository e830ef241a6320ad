"""The SQLite write-ahead log is checkpointed beside the hot path, not in it,
and stays bounded under a steady stream of commits."""

import os
import sqlite3
import time
from pathlib import Path

from billing_service.metering.sqlite.checkpoints import WalCheckpointer

PAGE = 4096


def _writer(path: Path) -> sqlite3.Connection:
    """A connection that commits like the hot path: WAL, no checkpoints of its own."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA busy_timeout=1000")  # a RESTART checkpoint holds the write lock briefly
    conn.execute("CREATE TABLE IF NOT EXISTS rows (body BLOB)")
    return conn


def _commit(conn: sqlite3.Connection, wal: Path, rows: int) -> int:
    """Commit `rows` rows one at a time; the largest WAL size seen. A count,
    not a duration: on a loaded machine a second holds far fewer commits."""
    largest = 0
    for _ in range(rows):
        conn.execute("INSERT INTO rows VALUES (?)", (os.urandom(1024),))
        time.sleep(0.0001)  # the rest of a call's work, which leaves the lock free
        largest = max(largest, wal.stat().st_size)
    return largest


def test_without_checkpoints_the_log_only_grows(tmp_path: Path) -> None:
    # The baseline the checkpointer exists for: nothing ever copies the log back.
    conn = _writer(tmp_path / "db")
    committed = 300
    largest = _commit(conn, tmp_path / "db-wal", committed)
    conn.close()
    assert largest >= committed * PAGE


def test_the_log_stays_bounded_under_steady_commits(tmp_path: Path) -> None:
    conn = _writer(tmp_path / "db")
    checkpointer = WalCheckpointer(
        str(tmp_path / "db"), interval_seconds=0.005, restart_pages=64, busy_ms=20
    )
    committed = 1500
    try:
        largest = _commit(conn, tmp_path / "db-wal", committed)
    finally:
        checkpointer.close()
    # A few hundred pages at most (the restart threshold plus what lands
    # between two ticks) where the unchecked log holds a page per commit.
    assert largest < 400 * PAGE < committed * PAGE
    assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == committed
    conn.close()
    # Everything committed is in the database file once the log is gone.
    reopened = sqlite3.connect(tmp_path / "db")
    assert reopened.execute("SELECT count(*) FROM rows").fetchone()[0] == committed
    reopened.close()


def test_closing_stops_the_thread_promptly(tmp_path: Path) -> None:
    _writer(tmp_path / "db").close()
    checkpointer = WalCheckpointer(str(tmp_path / "db"), interval_seconds=60)
    started = time.monotonic()
    checkpointer.close()
    # Far below the 60 s interval it would otherwise sleep out, with room for a
    # loaded machine.
    assert time.monotonic() - started < 10
