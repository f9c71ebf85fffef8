"""Conversations in one SQLite file: the default, embedded, survives restarts, several processes at once.

* The standard library's `sqlite3`, run off the event loop on the database's
  own thread (`Database.call`), on one connection opened on first use.
* WAL mode, so readers never block the writer, and a busy timeout, so
  processes sharing the file queue for the write lock instead of failing.
* Every write is one `BEGIN IMMEDIATE` transaction: an append stores the
  turn, its messages and the new tip together, and moves the tip with
  `UPDATE threads SET tip = ? WHERE id = ? AND tip IS ?`, so a writer whose
  tip is stale changes nothing and learns it (`ConversationConflict`).
* The schema is a list of numbered migrations, applied in order once each and
  recorded in `_migrations` (as Simon Willison's `llm` does), so an older file
  is upgraded in place.
* The directory is 0700 and the file 0600 (SQLite gives its `-wal` and `-shm`
  files the database file's mode): stored text is the callers' own.
* A call on a conversation holds its turn in `writers` (a row with a short
  lease, renewed while the call runs), so processes sharing the file serve one
  conversation's calls one at a time.
* Another process holding the file's write lock is an outage of its writes:
  one warning, waits no longer than the call's deadline (`waiting_until`) and
  the least time once it is known, and reads go on meanwhile (a reconnection takes no write lock when the schema is
  current).
* Expiry follows the injectable clock: a thread unused for `ttl_s` is expired
  on sight, and dropped (with a tombstone, so it reads as expired rather than
  unknown for `tombstone_s`) by the next write or `sweep()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..defaults import SQLITE_BUSY_TIMEOUT_S
from .errors import ConversationConflict, ExpiredConversation, StoreError, UnknownConversation
from ..outage import Outage
from ..sqlite import Database, transaction, waiting_until
from .records import (
    ChatMessage,
    Message,
    Thread,
    ThreadPage,
    ThreadView,
    Turn,
    Usage,
    decode_cursor,
    default_db_path,
    from_us,
    page_of,
    size_of,
    to_us,
)
from .store import ConversationStore, Stored

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

logger = logging.getLogger("hive_mcp.conversations")

_THREAD_COLS = (
    "id, owner, created_us, last_used_us, tip, forked_from, forked_from_thread, lineage, turns, bytes, cost_usd, models, "
    "unpriced_turns"
)
_TURN_COLS = (
    "id, thread_id, lineage, owner, model, status, created_us, duration_ms, "
    "input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_usd"
)


def _m001_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE threads (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_us INTEGER NOT NULL, "
        "last_used_us INTEGER NOT NULL, tip TEXT, forked_from TEXT, forked_from_thread TEXT, lineage TEXT NOT NULL, "
        "turns INTEGER NOT NULL, bytes INTEGER NOT NULL, cost_usd REAL NOT NULL, models TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX threads_by_use ON threads (last_used_us, id)")
    conn.execute("CREATE INDEX threads_by_owner ON threads (owner, last_used_us, id)")
    conn.execute("CREATE INDEX threads_by_lineage ON threads (lineage)")
    conn.execute(
        "CREATE TABLE turns (id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, lineage TEXT NOT NULL, owner TEXT NOT NULL, "
        "model TEXT NOT NULL, status TEXT NOT NULL, created_us INTEGER NOT NULL, duration_ms REAL, "
        "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, "
        "reasoning_tokens INTEGER NOT NULL, cost_usd REAL)"
    )
    conn.execute("CREATE INDEX turns_by_lineage ON turns (lineage)")
    conn.execute(
        "CREATE TABLE messages (id TEXT PRIMARY KEY, parent_id TEXT, turn_id TEXT, lineage TEXT NOT NULL, "
        "role TEXT NOT NULL, body TEXT NOT NULL, bytes INTEGER NOT NULL)"
    )
    conn.execute("CREATE INDEX messages_by_lineage ON messages (lineage)")
    conn.execute("CREATE TABLE tombstones (id TEXT PRIMARY KEY, reason TEXT NOT NULL, at_us INTEGER NOT NULL)")
    conn.execute("CREATE INDEX tombstones_by_age ON tombstones (at_us)")


def _m002_writers(conn: sqlite3.Connection) -> None:
    # The call writing each conversation now, across the processes sharing the file (`writer`).
    conn.execute("CREATE TABLE writers (id TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL)")


def _m003_tombstone_owners(conn: sqlite3.Connection) -> None:
    # Whose a dropped thread was: only its owner is told it expired (NULL in older rows: told to nobody).
    conn.execute("ALTER TABLE tombstones ADD COLUMN owner TEXT")


def _m004_unpriced_turns(conn: sqlite3.Connection) -> None:
    # How many turns of a thread's chain had no price (its cost counts them as 0); counted for the stored
    # threads by walking each one's chain from its tip.
    conn.execute("ALTER TABLE threads ADD COLUMN unpriced_turns INTEGER NOT NULL DEFAULT 0")
    unpriced = {r[0] for r in conn.execute("SELECT id FROM turns WHERE cost_usd IS NULL")}
    if not unpriced:
        return
    links = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, parent_id, turn_id FROM messages")}
    for thread_id, tip in conn.execute("SELECT id, tip FROM threads").fetchall():
        seen: set[str] = set()
        while tip in links:
            tip, turn_id = links[tip]
            if turn_id in unpriced:
                seen.add(turn_id)
        if seen:
            conn.execute("UPDATE threads SET unpriced_turns = ? WHERE id = ?", (len(seen), thread_id))


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("m001_initial", _m001_initial), ("m002_writers", _m002_writers),
    ("m003_tombstone_owners", _m003_tombstone_owners), ("m004_unpriced_turns", _m004_unpriced_turns),
]
"""Applied in this order, each once; append new ones, never edit an applied one."""


def _thread_of(row: tuple[Any, ...]) -> Thread:
    return Thread(
        id=row[0], owner=row[1], created=from_us(row[2]), last_used=from_us(row[3]), tip=row[4], forked_from=row[5],
        forked_from_thread=row[6], lineage=row[7], turns=row[8], bytes=row[9], cost_usd=row[10],
        models=json.loads(row[11]), unpriced_turns=row[12],
    )  # fmt: skip


def _turn_of(row: tuple[Any, ...]) -> Turn:
    usage = Usage(input_tokens=row[8], output_tokens=row[9], cached_tokens=row[10], reasoning_tokens=row[11])
    return Turn(
        id=row[0], thread_id=row[1], owner=row[3], model=row[4], status=row[5], created=from_us(row[6]),
        duration_ms=row[7], usage=usage.model_copy(update={"cost_usd": row[12]}),
    )  # fmt: skip


class SQLiteStore(ConversationStore):
    """The SQLite backend; `path` defaults to `default_db_path(env)`."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path) if path is not None else default_db_path(env)
        self.name = str(self.path)
        self.busy_timeout_s = busy_timeout_s
        self._db = Database(self.path, busy_timeout_s, self._migrate, current=self._current)
        self._away = False  # an outage is on: waits are the least
        self._outage = Outage(
            logger, "the conversation store (SQLite) is unavailable (%s) at %s: answers are not stored and "
            "conversations cannot be continued until it answers", f"the conversation store (SQLite) at {self.name} "
            "answers again", self.name, store="conversations",
        )  # fmt: skip

    # -- plumbing ------------------------------------------------------------

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_us INTEGER)")
        done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
        for name, migrate in MIGRATIONS:
            if name not in done:
                migrate(conn)
                conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, to_us(self.now())))

    @staticmethod
    def _current(conn: sqlite3.Connection) -> bool:
        """Whether every migration is applied: read without the write lock, which another process may hold."""
        try:
            done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
        except sqlite3.OperationalError:  # no such table: a new file
            return False
        return all(name in done for name, _ in MIGRATIONS)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], operation: str, *, write: bool = False) -> T:
        """`fn` on the connection. A failure to reach the file (locked, full, unreadable) is an outage: one
        warning, then every failure is told, and a lock is waited for the least time (`LEAST_WAIT_S`) rather
        than the call's deadline; a write that lands ends it (reads may go on under another process's lock, so
        one that works says nothing of writes)."""
        try:
            with waiting_until(time.monotonic()) if self._away else contextlib.nullcontext():
                out = await self._db.call(fn)
        except (sqlite3.Error, OSError) as exc:
            away = isinstance(exc, (sqlite3.OperationalError, OSError))
            if away:
                self._away = True
                self._outage.failed(exc)
            raise StoreError(self.name, operation, exc, told=away) from None
        if write:
            self._away = False
            self._outage.worked()
        return out

    async def aclose(self) -> None:
        await super().aclose()
        await self._db.aclose()

    async def _take_writer(self, conversation_id: str, token: str, lease_s: float) -> bool:
        now = time.time()  # leases are the machine's time, which every process on the file shares

        def take(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                conn.execute("DELETE FROM writers WHERE id = ? AND expires <= ?", (conversation_id, now))
                return conn.execute(
                    "INSERT OR IGNORE INTO writers VALUES (?, ?, ?)", (conversation_id, token, now + lease_s)
                ).rowcount == 1

        return await self._run(take, "take a conversation's turn", write=True)

    async def _drop_writer(self, conversation_id: str, token: str) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM writers WHERE id = ? AND token = ?", (conversation_id, token))

        await self._run(drop, "end a conversation's turn", write=True)

    async def _renew_writers(self, held: list[tuple[str, str, float]]) -> None:
        now = time.time()

        def renew(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "UPDATE writers SET expires = ? WHERE id = ? AND token = ?",
                    [(now + lease_s, conversation_id, token) for conversation_id, token, lease_s in held],
                )

        await self._run(renew, "renew a conversation's turn", write=True)

    # -- rules inside a connection -------------------------------------------

    def _live(self, conn: sqlite3.Connection, conversation_id: str) -> Thread:
        row = conn.execute(f"SELECT {_THREAD_COLS} FROM threads WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            gone = conn.execute("SELECT reason, owner FROM tombstones WHERE id = ?", (conversation_id,)).fetchone()
            if gone is not None:
                raise ExpiredConversation(conversation_id, gone[0], gone[1])
            raise UnknownConversation(conversation_id)
        cutoff = self._cutoff_us()
        if cutoff is not None and row[3] < cutoff:
            raise ExpiredConversation(conversation_id, owner=row[1])
        return _thread_of(row)

    def _drop(self, conn: sqlite3.Connection, ids: list[str], reason: str | None) -> None:
        """Delete threads, tombstone them (unless deleted on request), free what no other fork reaches."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT id, owner, lineage FROM threads WHERE id IN ({marks})", ids).fetchall()
        lineages = {r[2] for r in rows}
        conn.execute(f"DELETE FROM threads WHERE id IN ({marks})", ids)
        if reason is not None:
            now = to_us(self.now())
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones (id, reason, at_us, owner) VALUES (?, ?, ?, ?)",
                [(i, reason, now, owner) for i, owner, _ in rows],
            )
        for lineage in lineages:
            conn.execute(
                "WITH RECURSIVE live(id) AS (SELECT tip FROM threads WHERE lineage = :l AND tip IS NOT NULL "
                "UNION SELECT m.parent_id FROM messages m JOIN live ON m.id = live.id WHERE m.parent_id IS NOT NULL) "
                "DELETE FROM messages WHERE lineage = :l AND id NOT IN (SELECT id FROM live)",
                {"l": lineage},
            )
            conn.execute(
                "DELETE FROM turns WHERE lineage = :l AND id NOT IN "
                "(SELECT turn_id FROM messages WHERE lineage = :l AND turn_id IS NOT NULL)",
                {"l": lineage},
            )

    def _sweep(self, conn: sqlite3.Connection) -> int:
        cutoff = self._cutoff_us()
        conn.execute(
            "DELETE FROM tombstones WHERE at_us < ?", (to_us(self.now()) - int(self.limits.tombstone_s * 1e6),)
        )
        if cutoff is None:
            return 0
        ids = [r[0] for r in conn.execute("SELECT id FROM threads WHERE last_used_us < ?", (cutoff,))]
        self._drop(conn, ids, "expired")
        return len(ids)

    def _write_records(
        self, conn: sqlite3.Connection, thread: Thread, messages: list[Stored], turn: Turn | None
    ) -> None:
        if turn is not None:
            u = turn.usage
            conn.execute(
                f"INSERT INTO turns ({_TURN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (turn.id, turn.thread_id, thread.lineage, turn.owner, turn.model, turn.status, to_us(turn.created),
                 turn.duration_ms, u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens, u.cost_usd),
            )  # fmt: skip
        conn.executemany(
            "INSERT INTO messages VALUES (?,?,?,?,?,?,?)",
            [(m.id, m.parent_id, m.turn_id, thread.lineage, m.body.role, text, size_of([(m.body, text)]))
             for m, text in messages],
        )  # fmt: skip

    # -- primitives ----------------------------------------------------------

    async def _thread(self, conversation_id: str) -> Thread:
        return await self._run(lambda conn: self._live(conn, conversation_id), "read a conversation")

    async def _view(self, conversation_id: str) -> ThreadView:
        def read(conn: sqlite3.Connection) -> ThreadView:
            conn.execute("BEGIN")  # one snapshot for the thread and its chain
            try:
                thread = self._live(conn, conversation_id)
                rows = conn.execute(
                    "WITH RECURSIVE chain(id, depth) AS (SELECT ?, 0 UNION ALL SELECT m.parent_id, c.depth + 1 "
                    "FROM messages m JOIN chain c ON m.id = c.id WHERE m.parent_id IS NOT NULL) "
                    "SELECT m.id, m.parent_id, m.turn_id, m.body FROM chain c JOIN messages m ON m.id = c.id "
                    "ORDER BY c.depth DESC",
                    (thread.tip,),
                ).fetchall()
                turn_ids = list(dict.fromkeys(r[2] for r in rows if r[2]))
                marks = ",".join("?" * len(turn_ids))
                turn_rows = conn.execute(
                    f"SELECT {_TURN_COLS} FROM turns WHERE id IN ({marks}) ORDER BY created_us, id", turn_ids
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            messages = [
                Message(id=r[0], parent_id=r[1], turn_id=r[2], body=ChatMessage.model_validate_json(r[3])) for r in rows
            ]
            return ThreadView(thread=thread, messages=messages, turns=[_turn_of(r) for r in turn_rows])

        return await self._run(read, "read a conversation")

    async def _insert(self, thread: Thread, messages: list[Stored], turn: Turn | None, *, touch: str | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                self._sweep(conn)
                if touch is not None:
                    self._live(conn, touch)
                    point = thread.forked_from
                    found = conn.execute("SELECT 1 FROM messages WHERE id = ?", (point,)).fetchone()
                    if point is not None and found is None:
                        raise ExpiredConversation(touch)
                    conn.execute("UPDATE threads SET last_used_us = ? WHERE id = ?", (to_us(thread.created), touch))
                self._write_records(conn, thread, messages, turn)
                conn.execute(
                    f"INSERT INTO threads ({_THREAD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (thread.id, thread.owner, to_us(thread.created), to_us(thread.last_used), thread.tip,
                     thread.forked_from, thread.forked_from_thread, thread.lineage, thread.turns, thread.bytes,
                     thread.cost_usd, json.dumps(thread.models), thread.unpriced_turns),
                )  # fmt: skip
                cap = self.limits.max_conversations
                if cap is not None:
                    (count,) = conn.execute("SELECT COUNT(*) FROM threads").fetchone()
                    if count > cap:
                        oldest = conn.execute(
                            "SELECT id FROM threads WHERE id != ? ORDER BY last_used_us, id LIMIT ?",
                            (thread.id, count - cap),
                        )
                        self._drop(conn, [r[0] for r in oldest], "evicted")

        await self._run(write, "store a new conversation", write=True)

    async def _advance(
        self, thread: Thread, expected_tip: str | None, messages: list[Stored], turn: Turn | None
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                self._live(conn, thread.id)
                self._write_records(conn, thread, messages, turn)
                moved = conn.execute(
                    "UPDATE threads SET tip = ?, last_used_us = ?, turns = ?, bytes = ?, cost_usd = ?, models = ?, "
                    "unpriced_turns = ? WHERE id = ? AND tip IS ?",
                    (thread.tip, to_us(thread.last_used), thread.turns, thread.bytes, thread.cost_usd,
                     json.dumps(thread.models), thread.unpriced_turns, thread.id, expected_tip),
                )  # fmt: skip
                if moved.rowcount != 1:
                    raise ConversationConflict(thread.id)

        await self._run(write, "append to a conversation", write=True)

    async def _list(
        self, *, owner: str | None, limit: int, cursor: str | None, model: str | None, since: datetime | None
    ) -> ThreadPage:
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        floor = self._floor_us(since)
        where.append("last_used_us >= ?")
        args.append(floor)
        if model is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(threads.models) WHERE value = ?)")
            args.append(model)
        if cursor is not None:
            used, after = decode_cursor(cursor)
            where.append("(last_used_us < ? OR (last_used_us = ? AND id < ?))")
            args += [used, used, after]
        sql = (
            f"SELECT {_THREAD_COLS} FROM threads WHERE {' AND '.join(where)} "
            "ORDER BY last_used_us DESC, id DESC LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, (*args, limit + 1)).fetchall()

        return page_of([_thread_of(r) for r in await self._run(read, "list conversations")], limit)

    async def _delete(self, thread: Thread) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                self._drop(conn, [thread.id], None)

        await self._run(write, "delete a conversation", write=True)

    async def count(self) -> int:
        floor = self._floor_us(None)

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM threads WHERE last_used_us >= ?", (floor,)).fetchone()[0])

        return await self._run(read, "count conversations")

    async def sweep(self) -> int:
        def write(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return self._sweep(conn)

        return await self._run(write, "sweep expired conversations", write=True)
