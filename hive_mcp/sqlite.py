"""SQLite as the embedded stores use it (conversations, the spend ledger): one way to open a file, one
transaction, and one connection per store (`Database`).

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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .home import private_dir

T = TypeVar("T")


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
        _switch_to_wal(conn, busy_timeout_s)
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
    except BaseException:
        conn.close()
        raise
    return conn


WAL_RETRY_MOST_S = 0.05
"""The longest pause between two tries of the switch to WAL."""


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """`PRAGMA journal_mode = WAL`, waiting as the busy timeout would for a writer on a file not yet in WAL mode.

    While another connection holds the write lock of a file in rollback mode (as
    one does for the instant it switches a fresh file to WAL), SQLite answers the
    switch with SQLITE_BUSY at once, without its busy handler: stores opening a
    fresh file together failed now and then. This tries again, with pauses
    doubling from 1 ms, until the busy timeout has passed.
    """
    give_up = time.monotonic() + busy_timeout_s
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= give_up:
                raise
        time.sleep(pause)
        pause = min(2 * pause, WAL_RETRY_MOST_S)


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


class Database:
    """A store's one connection to the private file at `path`: opened on first use, then `on_connect(conn)` in
    one transaction (the schema, its migrations); used by one thread at a time; dropped after a failure
    (`sqlite3.Error`, `OSError`), so the next call starts from a fresh connection (disk freed, lock gone)."""

    def __init__(self, path: Path, busy_timeout_s: float, on_connect: Callable[[sqlite3.Connection], None]) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._on_connect = on_connect
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path, self.busy_timeout_s)
        try:
            with transaction(conn):
                self._on_connect(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)`, alone on the connection (blocking: call it in a worker thread)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._open()
                return fn(self._conn)
            except (sqlite3.Error, OSError):
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
