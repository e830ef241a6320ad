"""Whether anything was committed to a SQLite database since a given moment,
told without a transaction: from the wal-index header in the shared memory
that every connection to a database in WAL mode maps (the `-shm` file).

Why: a read on SQLite, however small, is a read transaction, and in WAL mode
each one takes and drops a lock in that shared memory (fcntl calls) and
re-reads the header (docs/performance.md has what that costs CheckQuota).
With this watch, a check whose counter was read since the last commit (by
any connection, any process) is answered from that read (KeptReads).

Why that is exact: a commit in WAL mode becomes visible to readers when its
writer rewrites the header (after the log's frames are written); a reader
that finds the header as it was knows that no transaction committed since.
A writer writes the header's second copy, then the first, so the two copies
differ while it is at work, and then the header counts as changed. Any
commit changes it (its change counter and frame count), as does the log
starting over. A caller that got an answer from a write on another process
sent its next call after that writer's commit had rewritten the header, so
the next read of it here sees the change: read-your-writes holds across
processes. Within a transaction of its own, a connection sees its own
uncommitted writes, which the header does not show: callers must not use a
mark taken there (the backend reads the database instead).

The format is SQLite's (https://www.sqlite.org/walformat.html, "The WAL-Index
Header"): it cannot change while processes running different SQLite versions
may share a database, and the watch checks the version it names, else there
is no watch and every read goes to the database.

The watch reads the header through SQLite's own descriptor of the `-shm` file
(found in /proc/self/fd; no watch where there is none) and never opens or
closes one itself: closing any descriptor of a file drops every POSIX lock the
process holds on it, SQLite's included, and without them another process that
opens the database would find the shared memory unused, truncate it and start
it afresh under this one's connections. SQLite keeps its descriptor open for
as long as any connection of the process has the database open, as the
metering backend's own connection does for the watch's whole life.
"""

import os
import struct
from typing import Generic, TypeVar

# Two copies of the 48-byte WalIndexHdr: iVersion u32, unused u32, iChange
# u32, isInit u8, bigEndCksum u8, szPage u16, mxFrame u32, nPage u32,
# aFrameCksum[2] u32, aSalt[2] u32, aCksum[2] u32; native byte order.
_HEADER_COPY = 48
_HEADER_BYTES = 2 * _HEADER_COPY
_WAL_INDEX_VERSION = 3007000
_VERSION_AND_INIT = struct.Struct("=I4xIB")


class CommitWatch:
    """Reads one database's wal-index header through SQLite's descriptor."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor

    @classmethod
    def open(cls, database_path: str) -> "CommitWatch | None":
        """Watch the database at `database_path`, which a connection of this
        process holds open in WAL mode; None where there is no wal-index to
        watch (no `-shm` file open, as with `locking_mode=EXCLUSIVE`, or no
        /proc) or not one of the format known here."""
        descriptor = _descriptor_of(os.path.realpath(f"{database_path}-shm"))
        if descriptor is None:
            return None
        try:
            header = os.pread(descriptor, _HEADER_BYTES, 0)
        except OSError:
            return None
        if len(header) < _HEADER_BYTES:
            return None
        version, _change, initialised = _VERSION_AND_INIT.unpack_from(header)
        if version != _WAL_INDEX_VERSION or not initialised:
            return None
        return cls(descriptor)

    def mark(self) -> bytes | None:
        """The header now, to compare with a later mark: equal marks mean
        that nothing was committed in between. None while a writer is
        rewriting it."""
        header = os.pread(self._descriptor, _HEADER_BYTES, 0)
        if header[:_HEADER_COPY] != header[_HEADER_COPY:]:
            return None
        return header


def _descriptor_of(path: str) -> int | None:
    """A descriptor this process holds open on `path`, if any."""
    try:
        entries = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for entry in entries:
        try:
            if os.readlink(f"/proc/self/fd/{entry}") == path:
                return int(entry)
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor, say)
    return None


K = TypeVar("K")
V = TypeVar("V")


class KeptReads(Generic[K, V]):
    """Reads kept until the next commit to the database, by anyone: a read
    answered from here is as new as one from the database. Bounded: all are
    dropped at once past `limit`."""

    def __init__(self, watch: CommitWatch, limit: int = 65_536) -> None:
        self._watch = watch
        self._limit = limit
        self._reads: dict[K, V] = {}
        self._mark: bytes | None = None

    def get(self, key: K) -> V | None:
        """A read kept under `key` since the last commit; None: read again.
        Call `keep` after that read with the mark this returned in `mark`."""
        mark = self._watch.mark()
        if mark is None or mark != self._mark:
            self._reads.clear()
            self._mark = mark
            return None
        return self._reads.get(key)

    def keep(self, key: K, value: V) -> None:
        """Keep a read made after the last `get` (under the mark it took)."""
        if self._mark is None:
            return
        if len(self._reads) >= self._limit:
            self._reads.clear()
        self._reads[key] = value
