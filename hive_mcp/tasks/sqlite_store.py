"""Tasks in a SQLite file (the default, in the hive home next to conversations): processes on one machine that
share the file (workers, instances) answer for each other's tasks.

Every write is one `BEGIN IMMEDIATE` transaction, so counting a caller's unfinished tasks and adding one happen
with no other writer in between (the per-caller cap holds across processes), and a task ends once: `finish`
changes only a row still `working`. A row's `expires` is `TaskRecord.expires`, stored at each write that moves it
(creating, ending, renewing a lease): a working task never expires. Expired rows are dropped by the next write.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..outage import Outage
from ..defaults import SQLITE_BUSY_TIMEOUT_S
from ..sqlite import Database, transaction
from .records import INPUT_REQUIRED, WORKING, TaskRecord, expires_at

__all__ = ["SQLiteTaskStore", "default_tasks_path"]

logger = logging.getLogger("hive_mcp.tasks")
T = TypeVar("T")

_COLS = (
    "task_id, owner, tool, created, ttl_ms, status, updated, message, result, error, instance, lease, cancel, "
    "input_requests, input_responses, request_state"
)
_UNFINISHED = f"status IN ('{WORKING}', '{INPUT_REQUIRED}')"


def default_tasks_path() -> Path:
    from ..conversations.records import default_db_path

    return default_db_path().with_name("hive-mcp-tasks.sqlite3")


def _schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, tool TEXT NOT NULL, "
        "created REAL NOT NULL, ttl_ms INTEGER NOT NULL, status TEXT NOT NULL, updated REAL NOT NULL, message TEXT, "
        "result TEXT, error TEXT, instance TEXT NOT NULL, lease REAL NOT NULL, cancel INTEGER NOT NULL DEFAULT 0, "
        "input_requests TEXT, input_responses TEXT, request_state TEXT, expires REAL NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created, task_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS tasks_by_expiry ON tasks (expires)")


def _row(row: tuple[Any, ...]) -> TaskRecord:
    (task_id, owner, tool, created, ttl_ms, status, updated, message, result, error, instance, lease, cancel,
     requests, responses, state) = row  # fmt: skip
    return TaskRecord(
        task_id=task_id, owner=owner, tool=tool, created=created, ttl_ms=ttl_ms, status=status, updated=updated,
        message=message, result=_load(result), error=_load(error), instance=instance, lease=lease,
        cancel_requested=bool(cancel), input_requests=_load(requests), input_responses=_load(responses),
        request_state=state,
    )  # fmt: skip


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


class SQLiteTaskStore:
    """The task store in the SQLite file at `path` (default: `hive-mcp-tasks.sqlite3` in the hive home); a write
    waits up to `busy_timeout_s` for another process's."""

    def __init__(self, path: Path | None = None, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        self.path = path if path is not None else default_tasks_path()
        self._db = Database(self.path, busy_timeout_s, _schema)
        self.outage = Outage(
            logger, "the task store (SQLite) is unavailable (%s) at %s: tasks cannot be started or read, and a task "
            "that ends meanwhile is kept by the process that ran it until the file answers",
            f"the task store (SQLite) is back at {self.path}: tasks are stored again", self.path, store="tasks",
        )  # fmt: skip

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)` on the store's connection; a failure (the file locked past the busy timeout, unwritable,
        gone) is warned of once per outage, and the first success after it says the store is back."""
        try:
            out = await self._db.call(fn)
        except (sqlite3.Error, OSError) as exc:
            self.outage.failed(exc)
            raise
        self.outage.worked()
        return out

    def since_back(self) -> float:
        """Seconds since the file last answered again after failing in this process (see `Outage.since_back`)."""
        return self.outage.since_back()

    async def create(self, task: TaskRecord, cap: int, now: float) -> bool:
        """Store `task` unless its owner already has `cap` unfinished tasks; whether it was stored."""

        def go(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                conn.execute("DELETE FROM tasks WHERE expires <= ?", (now,))
                (n,) = conn.execute(
                    f"SELECT COUNT(*) FROM tasks WHERE owner = ? AND {_UNFINISHED} AND lease >= ?", (task.owner, now)
                ).fetchone()
                if n >= cap:
                    return False
                conn.execute(
                    f"INSERT INTO tasks ({_COLS}, expires) VALUES ({', '.join('?' * 17)})",
                    (task.task_id, task.owner, task.tool, task.created, task.ttl_ms, task.status, task.updated,
                     task.message, _dump(task.result), _dump(task.error), task.instance, task.lease,
                     int(task.cancel_requested), _dump(task.input_requests), _dump(task.input_responses),
                     task.request_state, task.expires),
                )  # fmt: skip
                return True

        return await self._run(go)

    async def get(self, task_id: str, now: float) -> TaskRecord | None:
        def go(conn: sqlite3.Connection) -> TaskRecord | None:
            row = conn.execute(f"SELECT {_COLS} FROM tasks WHERE task_id = ? AND expires > ?", (task_id, now))
            row = row.fetchone()
            return None if row is None else _row(row)

        return await self._run(go)

    async def page(self, owner: str, after: tuple[float, str] | None, limit: int, now: float) -> list[TaskRecord]:
        """`owner`'s tasks, newest first, from just after `after` (created, id)."""

        def go(conn: sqlite3.Connection) -> list[TaskRecord]:
            if after is None:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM tasks WHERE owner = ? AND expires > ? ORDER BY created DESC, task_id DESC "
                    "LIMIT ?", (owner, now, limit),
                ).fetchall()  # fmt: skip
            else:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM tasks WHERE owner = ? AND expires > ? AND (created < ? OR "
                    "(created = ? AND task_id < ?)) ORDER BY created DESC, task_id DESC LIMIT ?",
                    (owner, now, after[0], after[0], after[1], limit),
                ).fetchall()
            return [_row(r) for r in rows]

        return await self._run(go)

    async def finish(self, task: TaskRecord) -> bool:
        """Store `task`'s end, if it is still working; whether it was (a task ends once)."""

        def go(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cur = conn.execute(
                    "UPDATE tasks SET status = ?, updated = ?, message = ?, result = ?, error = ?, expires = ?, "
                    f"input_requests = NULL WHERE task_id = ? AND {_UNFINISHED}",
                    (task.status, task.updated, task.message, _dump(task.result), _dump(task.error), task.expires,
                     task.task_id),
                )  # fmt: skip
                return cur.rowcount == 1

        return await self._run(go)

    async def renew(self, instance: str, task_ids: list[str], lease: float, now: float) -> set[str]:
        """Extend the lease (and with it the expiry) of `instance`'s working tasks among `task_ids`; those a client
        asked to cancel."""

        def go(conn: sqlite3.Connection) -> set[str]:
            marks = ",".join("?" * len(task_ids))
            with transaction(conn):
                rows = conn.execute(
                    f"SELECT task_id, updated, ttl_ms FROM tasks WHERE instance = ? AND {_UNFINISHED} "
                    f"AND task_id IN ({marks})", (instance, *task_ids),
                ).fetchall()  # fmt: skip
                conn.executemany(
                    "UPDATE tasks SET lease = ?, expires = ? WHERE task_id = ?",
                    [(lease, expires_at(ended=False, updated=updated, lease=lease, ttl_ms=ttl), task_id)
                     for task_id, updated, ttl in rows],
                )  # fmt: skip
                rows = conn.execute(f"SELECT task_id FROM tasks WHERE cancel = 1 AND task_id IN ({marks})", task_ids)
                return {r[0] for r in rows}

        return await self._run(go) if task_ids else set()

    async def ask_input(self, task_id: str, requests: dict[str, Any], state: str | None, now: float) -> bool:
        """A working task's tool asks the client for input: `input_required`, answers so far cleared."""

        def go(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cur = conn.execute(
                    "UPDATE tasks SET status = ?, updated = ?, input_requests = ?, input_responses = '{}', "
                    "request_state = ? WHERE task_id = ? AND status = ?",
                    (INPUT_REQUIRED, now, _dump(requests), state, task_id, WORKING),
                )
                return cur.rowcount == 1

        return await self._run(go)

    async def answer(self, task_id: str, responses: dict[str, Any], now: float) -> TaskRecord | None:
        """Add the client's answers to the requests still pending (others are ignored); with none left pending the
        task is working again. The task as it stands after (None: unknown)."""

        def go(conn: sqlite3.Connection) -> TaskRecord | None:
            with transaction(conn):
                row = conn.execute(f"SELECT {_COLS} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
                if row is None:
                    return None
                task = _row(row)
                if task.status != INPUT_REQUIRED:
                    return task
                pending, answered = dict(task.input_requests or {}), dict(task.input_responses or {})
                for key in [k for k in responses if k in pending]:
                    answered[key] = responses[key]
                    del pending[key]
                status = INPUT_REQUIRED if pending else WORKING
                conn.execute(
                    "UPDATE tasks SET status = ?, updated = ?, input_requests = ?, input_responses = ? "
                    "WHERE task_id = ?",
                    (status, now, _dump(pending or None), _dump(answered), task_id),
                )
                return _row(conn.execute(f"SELECT {_COLS} FROM tasks WHERE task_id = ?", (task_id,)).fetchone())

        return await self._run(go)

    async def request_cancel(self, task_id: str) -> None:
        await self._run(lambda conn: conn.execute("UPDATE tasks SET cancel = 1 WHERE task_id = ?", (task_id,)))

    async def aclose(self) -> None:
        await self._db.aclose()
