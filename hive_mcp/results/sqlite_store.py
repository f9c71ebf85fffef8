"""Results in SQLite: their own file (`hive-mcp-results.sqlite3` beside the conversations' database), so a big
answer's write never waits behind a conversation's or the ledger's. WAL and a busy timeout (several processes
on one machine share it), run off the event loop one statement at a time; expired rows are deleted by the next
write."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..conversations.records import default_db_path
from ..defaults import SQLITE_BUSY_TIMEOUT_S
from ..sqlite import Database, transaction
from .store import ResultStore, ResultStoreError, ResultSummary, StoredResult

__all__ = ["RESULTS_FILENAME", "SQLiteResults"]

T = TypeVar("T")

RESULTS_FILENAME = "hive-mcp-results.sqlite3"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS results (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
        tokens INTEGER NOT NULL, size INTEGER NOT NULL, bounds TEXT NOT NULL, text TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS results_by_owner ON results (owner, created)",
    "CREATE INDEX IF NOT EXISTS results_by_expiry ON results (expires)",
)


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


class SQLiteResults(ResultStore):
    """The SQLite backend; `path` defaults to `hive-mcp-results.sqlite3` in the hive home."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] = os.environ,
        busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.path = Path(path) if path is not None else default_db_path(env).with_name(RESULTS_FILENAME)
        self.name = str(self.path)
        self._db = Database(self.path, busy_timeout_s, _create)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], operation: str) -> T:
        try:
            return await self._db.call(fn)
        except (sqlite3.Error, OSError) as exc:
            raise ResultStoreError(self.name, operation, exc) from None

    async def _put(self, kept: StoredResult) -> None:
        row = (kept.id, kept.owner, kept.created, kept.expires, kept.tokens, len(kept.text.encode()),
               json.dumps(kept.bounds), kept.text)  # fmt: skip

        def put(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM results WHERE expires <= ?", (kept.created,))
                conn.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

        await self._run(put, "keep a result")

    async def _get(self, result_id: str) -> StoredResult | None:
        def get(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "SELECT id, owner, text, bounds, tokens, created, expires FROM results WHERE id = ?", (result_id,)
            ).fetchone()

        row = await self._run(get, "read a result")
        if row is None:
            return None
        return StoredResult(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])

    async def _list(self, owner: str | None, limit: int, now: float) -> list[ResultSummary]:
        mine, args = ("owner = ? AND ", (owner,)) if owner is not None else ("", ())

        def listing(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT id, created, expires, size, bounds, tokens FROM results "
                f"WHERE {mine}expires > ? ORDER BY created DESC, id DESC LIMIT ?", (*args, now, limit),
            ).fetchall()  # fmt: skip

        rows = await self._run(listing, "list results")
        return [ResultSummary(r[0], r[1], r[2], r[3], len(json.loads(r[4])), r[5]) for r in rows]

    async def aclose(self) -> None:
        await self._db.aclose()
