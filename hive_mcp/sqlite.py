"""SQLite as the embedded stores use it (conversations, the spend ledger): one way to open a file and one transaction.

The file is private (0600 in a 0700 directory, tightened when ours and looser),
in WAL mode so several processes on one machine share it, with a busy timeout
so a writer waits for another instead of failing. Writes go in `BEGIN
IMMEDIATE` transactions: the write lock is taken before the first read, so a
check and the write it decides happen with no other writer in between.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from .home import private_dir


def ensure_private(path: Path) -> None:
    """The directory 0700 and the file 0600, created so, and tightened when ours and looser."""
    private_dir(path.parent)
    geteuid = getattr(os, "geteuid", None)  # POSIX only
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        st = os.fstat(fd)
        if geteuid is not None and st.st_uid == geteuid() and stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection to the private file at `path`, in WAL mode, in autocommit (transactions are ours)."""
    ensure_private(path)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE` ... `COMMIT`; rolled back when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (SQLITE_FULL, I/O errors): the
        # original error is the one to report, not a failed ROLLBACK.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
