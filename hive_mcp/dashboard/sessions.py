"""Dashboard sign-ins, kept on the server: a session is a random value in the browser's cookie, and here its
SHA-256 with the caller who signed in and when it ends.

A session lasts at most `SESSION_TTL_S` (12 hours) and ends at sign-out: the row goes, so the old cookie is
worth nothing afterwards, whoever kept a copy. Only digests are stored, so the file holds nothing a reader
could present. With a `path` the sessions are a private SQLite file that every worker of the server (and
every process on the machine sharing the hive home) reads, so a sign-in on one worker holds on the others
and a sign-out on one ends it on all; without one they live in this process.

A file another process holds locked (or one that cannot be written) makes a sign-in or a sign-out raise
`SessionsUnavailable`, one line naming the file, told once per outage in the log. A sign-out the file could not
take still ends the session in this process at once, and on every process with the next write that succeeds.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from ..outage import Outage
from ..defaults import SQLITE_BUSY_TIMEOUT_S
from ..sqlite import connect, transaction

__all__ = ["SESSIONS_FILENAME", "SESSION_TTL_S", "Sessions", "SessionsUnavailable"]

logger = logging.getLogger("hive_mcp.dashboard")

SESSION_TTL_S = 12 * 3600.0
SESSIONS_FILENAME = "hive-mcp-dashboard.sqlite3"

_SCHEMA = "CREATE TABLE IF NOT EXISTS sessions (digest BLOB PRIMARY KEY, caller TEXT NOT NULL, ends REAL NOT NULL)"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


class SessionsUnavailable(Exception):
    """The sessions' file could not be read or written now: one line naming it."""


class Sessions:
    """Who is signed in to the dashboard: `issue(caller)` a cookie value, `caller(value)`, `end(value)`."""

    def __init__(self, path: Path | None = None, ttl_s: float = SESSION_TTL_S) -> None:
        if not 0 < ttl_s <= SESSION_TTL_S:
            raise ValueError(f"a dashboard session lasts more than 0 s and at most {SESSION_TTL_S:.0f} s")
        self.ttl_s = ttl_s
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._ended: set[bytes] = set()  # signed out here, not yet in the file
        self._outage = Outage(
            logger, "dashboard sign-ins unavailable (%s): %s cannot be used; sign-in is refused until it can",
            "dashboard sign-ins in use again", path, store="dashboard",
        )  # fmt: skip

    def _run(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        """One statement, alone on the connection; a write in its own transaction (blocking: call it in a
        worker thread). `SessionsUnavailable` when the file cannot take it."""
        with self._lock:
            try:
                if self._conn is None:
                    if self._path is None:
                        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                    else:
                        conn = connect(self._path, SQLITE_BUSY_TIMEOUT_S)
                    conn.execute(_SCHEMA)
                    self._conn = conn
                if sql.startswith("SELECT"):  # a reader never waits for a writer's lock (WAL)
                    rows = self._conn.execute(sql, args).fetchall()
                else:
                    with transaction(self._conn):
                        rows = self._conn.execute(sql, args).fetchall()
            except (sqlite3.Error, OSError) as exc:
                if self._conn is not None:
                    self._conn.close()  # the next call starts from a fresh connection
                    self._conn = None
                self._outage.failed(exc)
                raise SessionsUnavailable(
                    f"the dashboard's sign-ins in {self._path} cannot be used now ({exc})"
                ) from None
        if not sql.startswith("SELECT"):  # a read works through a writer's lock: it says nothing of the outage
            self._outage.worked()
        return rows

    def issue(self, caller: str, now: float | None = None) -> str:
        """A new session of `caller`: the value for its cookie (never stored here)."""
        now = time.time() if now is None else now
        value = secrets.token_urlsafe(32)
        self._forget_ended()
        self._run("DELETE FROM sessions WHERE ends <= ?", (now,))  # the expired ones go as new ones come
        ends = now + self.ttl_s
        self._run("INSERT INTO sessions (digest, caller, ends) VALUES (?, ?, ?)", (_digest(value), caller, ends))
        return value

    def caller(self, value: str | None, now: float | None = None) -> str | None:
        """Who signed in with this cookie value; None when it is no session, or one that ended."""
        if not value:
            return None
        now = time.time() if now is None else now
        digest = _digest(value)
        if digest in self._ended:
            return None
        rows = self._run("SELECT caller FROM sessions WHERE digest = ? AND ends > ?", (digest, now))
        return str(rows[0][0]) if rows else None

    def end(self, value: str | None) -> None:
        """Sign out: this cookie value is no session from now on, on every process sharing the file (here at
        once; elsewhere once the file takes it: `SessionsUnavailable` says it has not yet)."""
        if value:
            with self._lock:
                self._ended.add(_digest(value))
            self._forget_ended()

    def _forget_ended(self) -> None:
        """The sessions signed out in this process deleted from the file."""
        with self._lock:
            ended = list(self._ended)
        if ended:
            self._run(f"DELETE FROM sessions WHERE digest IN ({','.join('?' * len(ended))})", tuple(ended))
            with self._lock:
                self._ended.difference_update(ended)
