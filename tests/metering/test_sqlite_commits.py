"""The commit watch tells a SQLite connection whether anything was committed
since it last looked, from any connection of any process, without a read."""

import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

from billing_service.metering.sqlite.commits import CommitWatch


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
    conn.close()


def test_every_commit_changes_the_mark(tmp_path: Path) -> None:
    conn = _database(tmp_path / "db")
    watch = _watch(tmp_path / "db")
    marks = {watch.mark()}
    for n in range(20):
        conn.execute("INSERT INTO rows VALUES (?)", (n,))
        marks.add(watch.mark())
    assert len(marks) == 21 and None not in marks
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
    conn.close()


def test_no_watch_without_shared_memory(tmp_path: Path) -> None:
    # Never opened in WAL mode: no -shm file.
    plain = sqlite3.connect(tmp_path / "plain")
    plain.execute("CREATE TABLE t (x)")
    assert CommitWatch.open(str(tmp_path / "plain")) is None
    plain.close()
    # WAL with exclusive locking keeps the index in the process's own memory.
    conn = sqlite3.connect(tmp_path / "alone", isolation_level=None)
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    assert CommitWatch.open(str(tmp_path / "alone")) is None
    conn.close()


def test_no_watch_of_a_database_this_process_does_not_have_open(tmp_path: Path) -> None:
    _database(tmp_path / "db").close()
    script = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM rows').fetchone(); print(flush=True); time.sleep(30)"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "db")], stdout=subprocess.PIPE
    )
    try:
        assert other.stdout is not None and other.stdout.readline()
        assert (tmp_path / "db-shm").exists()  # the other process's
        assert CommitWatch.open(str(tmp_path / "db")) is None
    finally:
        other.kill()
        other.wait()


def test_watching_leaves_the_processs_locks_on_the_shared_memory(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops all of the process's POSIX locks
    # on it; without SQLite's lock on the shared memory, the next process to
    # open the database would truncate it under this one's connections.
    conn = _database(tmp_path / "db")
    conn.execute("SELECT count(*) FROM rows").fetchone()
    assert _lock_on_shared_memory_seen_by_another_process(tmp_path / "db-shm") == "shared"
    watch = _watch(tmp_path / "db")
    watch.mark()
    conn.execute("SELECT count(*) FROM rows").fetchone()
    assert _lock_on_shared_memory_seen_by_another_process(tmp_path / "db-shm") == "shared"
    conn.close()


def _lock_on_shared_memory_seen_by_another_process(shm: Path) -> str:
    """The lock on SQLite's "dead man switch" byte of the -shm file (offset
    128), which every process with the database open holds shared."""
    script = (
        "import fcntl, os, struct, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
        "lock = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 128, 1, 0); "
        "kind = struct.unpack('hhqqi', fcntl.fcntl(fd, fcntl.F_GETLK, lock))[0]; "
        "print({fcntl.F_UNLCK: 'none', fcntl.F_RDLCK: 'shared', fcntl.F_WRLCK: 'exclusive'}[kind])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(shm)], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_no_watch_of_an_unknown_format(tmp_path: Path) -> None:
    for name, content in (("db", bytes(136)), ("short", bytes(10))):  # version 0; too short
        (tmp_path / f"{name}-shm").write_bytes(content)
        with (tmp_path / f"{name}-shm").open("rb"):  # held open, as SQLite would
            assert CommitWatch.open(str(tmp_path / name)) is None


def test_no_mark_while_the_two_copies_of_the_header_differ(tmp_path: Path) -> None:
    # A writer rewrites the second copy, then the first: in between, the
    # header is neither the old one nor the new.
    header = struct.pack("=I4xIB", 3007000, 5, 1).ljust(48, b"\0")
    newer = struct.pack("=I4xIB", 3007000, 6, 1).ljust(48, b"\0")
    shm = tmp_path / "db-shm"
    shm.write_bytes((header + newer).ljust(136, b"\0"))
    with shm.open("r+b") as held:  # held open, as SQLite would
        watch = _watch(tmp_path / "db")
        assert watch.mark() is None
        held.write((newer + newer).ljust(136, b"\0"))
        held.flush()
        assert watch.mark() == newer + newer
