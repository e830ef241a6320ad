"""The commit watch tells a SQLite connection whether anything was committed
since it last looked, from any connection of any process, without a read."""

import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

from billing_service.storage.sqlite_commits import CommitWatch


def _database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS rows (n INTEGER)")
    return conn


def _watch(path: Path) -> CommitWatch:
    watch = CommitWatch.open(str(path))
    assert watch is not None
    return watch


def test_reads_and_rollbacks_leave_the_mark_as_it_was(tmp_path: Path) -> None:
    conn = _database(tmp_path / "db")
    watch = _watch(tmp_path / "db")
    before = watch.mark()
    assert before is not None
    conn.execute("SELECT count(*) FROM rows").fetchone()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO rows VALUES (1)")
    assert watch.mark() == before  # not committed: other connections do not see it yet
    conn.execute("ROLLBACK")
    assert watch.mark() == before
    watch.close()
    conn.close()


def test_every_commit_changes_the_mark(tmp_path: Path) -> None:
    conn = _database(tmp_path / "db")
    watch = _watch(tmp_path / "db")
    marks = {watch.mark()}
    for n in range(20):
        conn.execute("INSERT INTO rows VALUES (?)", (n,))
        marks.add(watch.mark())
    assert len(marks) == 21 and None not in marks
    watch.close()
    conn.close()


def test_a_commit_in_another_process_changes_the_mark(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = _database(path)  # holds the database open, as the hot path does
    watch = _watch(path)
    before = watch.mark()
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('INSERT INTO rows VALUES (7)'); c.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    after = watch.mark()
    assert after is not None and after != before
    assert conn.execute("SELECT n FROM rows").fetchall() == [(7,)]
    watch.close()
    conn.close()


def test_a_checkpoint_keeps_the_mark_and_a_log_started_over_changes_it(tmp_path: Path) -> None:
    # A checkpoint copies committed pages: the data a reader sees is the same,
    # and kept reads outlive the checkpointer's ticks; starting the log over
    # changes the header.
    conn = _database(tmp_path / "db")
    conn.execute("INSERT INTO rows VALUES (1)")
    watch = _watch(tmp_path / "db")
    before = watch.mark()
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert watch.mark() == before
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.execute("INSERT INTO rows VALUES (2)")
    assert watch.mark() != before
    watch.close()
    conn.close()


def test_no_watch_without_shared_memory(tmp_path: Path) -> None:
    # Never opened in WAL mode: no -shm file.
    sqlite3.connect(tmp_path / "plain").execute("CREATE TABLE t (x)").connection.close()
    assert CommitWatch.open(str(tmp_path / "plain")) is None
    # WAL with exclusive locking keeps the index in the process's own memory.
    conn = sqlite3.connect(tmp_path / "alone", isolation_level=None)
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    assert CommitWatch.open(str(tmp_path / "alone")) is None
    conn.close()


def test_no_watch_of_an_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "db-shm").write_bytes(bytes(136))  # version 0, not initialised
    assert CommitWatch.open(str(tmp_path / "db")) is None
    (tmp_path / "short-shm").write_bytes(bytes(10))
    assert CommitWatch.open(str(tmp_path / "short")) is None


def test_no_mark_while_the_two_copies_of_the_header_differ(tmp_path: Path) -> None:
    # A writer rewrites the second copy, then the first: in between, the
    # header is neither the old one nor the new.
    header = struct.pack("=I4xIB", 3007000, 5, 1).ljust(48, b"\0")
    newer = struct.pack("=I4xIB", 3007000, 6, 1).ljust(48, b"\0")
    (tmp_path / "db-shm").write_bytes((header + newer).ljust(136, b"\0"))
    watch = _watch(tmp_path / "db")
    assert watch.mark() is None
    (tmp_path / "db-shm").write_bytes((newer + newer).ljust(136, b"\0"))
    assert watch.mark() == newer + newer  # a shared mapping: the file's bytes as they are now
    watch.close()
