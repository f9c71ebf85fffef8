"""SQLite as the embedded stores use it (conversations, tasks, results, the spend ledger): one way to open a
file, one transaction, and one connection per store (`Database`), with a thread of its own for the async stores.

The file is private (0600 in a 0700 directory, tightened when ours and looser),
in WAL mode so several processes on one machine share it, with a busy timeout
so a writer waits for another instead of failing. Writes go in `BEGIN
IMMEDIATE` transactions: the write lock is taken before the first read, so a
check and the write it decides happen with no other writer in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .home import private_dir

T = TypeVar("T")

_until: ContextVar[float | None] = ContextVar("hive_mcp_sqlite_until", default=None)


@contextlib.contextmanager
def waiting_until(at: float | None) -> Iterator[None]:
    """Within the block, this task's database work (`Database.call`) waits for another connection's lock until
    `at` (`time.monotonic()`) at most, rather than the whole busy timeout: a call's deadline bounds its store
    work. None: the busy timeout again (work the block calls that is not bounded so)."""
    token = _until.set(at)
    try:
        yield
    finally:
        _until.reset(token)


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


LEAST_WAIT_S = 0.2
"""The shortest wait for another connection's lock, even past a deadline: longer than a write takes."""

IDLE_S = 10.0
"""How long a database's thread waits for work before it ends (the next call starts another)."""

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class Database:
    """A store's one connection to the private file at `path`: opened on first use, then `on_connect(conn)` in
    one transaction (the schema, its migrations); used by one thread at a time; dropped after a failure
    (`sqlite3.Error`, `OSError`), so the next call starts from a fresh connection (disk freed, lock gone).

    An async store's work (`call`, `aclose`) runs on the database's own thread, one job at a time in the order
    asked. That work comes before the answer of every call that keeps a conversation, and a thread waiting on
    its own queue is reached, and heard from, sooner than a worker through `anyio.to_thread`."""

    def __init__(
        self, path: Path, busy_timeout_s: float, on_connect: Callable[[sqlite3.Connection], None], *,
        current: Callable[[sqlite3.Connection], bool] | None = None,
    ) -> None:  # fmt: skip
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._on_connect = on_connect
        self._current = current
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._serving = False
        self._jobs_lock = threading.Lock()

    def _open(self, wait_s: float) -> sqlite3.Connection:
        conn = connect(self.path, wait_s)
        try:
            if self._current is None or not self._current(conn):  # a current schema: no write lock to wait for
                with transaction(conn):
                    self._on_connect(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def run(self, fn: Callable[[sqlite3.Connection], T], until: float | None = None) -> T:
        """`fn(conn)`, alone on the connection (blocking: call it in a worker thread); a lock another connection
        holds is waited for until `until` (`time.monotonic()`; `LEAST_WAIT_S` at least) when that comes before
        the busy timeout ends."""
        with self._lock:
            try:
                full = self.busy_timeout_s
                wait = full if until is None else min(full, max(LEAST_WAIT_S, until - time.monotonic()))
                if self._conn is None:
                    self._conn = self._open(wait)  # opening waits no longer than the work
                elif wait < full:
                    self._conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
                conn = self._conn
                try:
                    return fn(conn)
                finally:
                    if wait < full:  # the next work waits the whole busy timeout again
                        conn.execute(f"PRAGMA busy_timeout = {int(full * 1000)}")
            except (sqlite3.Error, OSError):
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`run(fn)` on the database's thread, the event loop free meanwhile. A cancelled caller waits for `fn`
        to finish (as with `anyio.to_thread.run_sync`): a write it began is done, or failed, when it leaves;
        so a lock is waited for until the caller's `waiting_until` at most."""
        until = _until.get()
        return await self._on_thread(lambda: self.run(fn, until))

    async def aclose(self) -> None:
        """`close()` on the database's thread, after the work asked for before it."""
        await self._on_thread(self.close)

    async def _on_thread(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        with self._jobs_lock:
            if not self._serving:  # a thread that cannot start raises here, with nothing queued
                threading.Thread(target=self._serve, name=f"hive-mcp-sqlite {self.path.name}", daemon=True).start()
                self._serving = True
            self._jobs.put((loop, done, work))
        with anyio.CancelScope(shield=True):
            return await done

    def _serve(self) -> None:
        while True:
            try:
                loop, done, work = self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._jobs_lock:  # a job is put under this lock: none slips in as the thread ends
                    if self._jobs.empty():
                        self._serving = False
                        return
                continue
            try:
                result, error = work(), None
            except BaseException as exc:  # the caller's to handle, as if it had run the work itself
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits for this
                loop.call_soon_threadsafe(_settle, done, result, error)
            del done, work, result, error  # nothing held while idle

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
