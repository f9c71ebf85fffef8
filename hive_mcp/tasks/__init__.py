"""Tasks: calls that outlive their request. The engine (`TaskEngine`), its stores (SQLite by default, Redis or
Valkey at HIVE_MCP_STATE_URL), both protocol generations on the wire (`wire`), and the rule for when a
completion becomes a task unasked (`policy`)."""

from __future__ import annotations

from typing import Any

from .engine import Job, TaskEngine, TaskNotFound, TaskStore, TooManyTasks
from .policy import runs_long
from .records import TaskRecord

__all__ = [
    "Job", "TaskEngine", "TaskNotFound", "TaskRecord", "TaskStore", "TooManyTasks", "open_task_store", "runs_long",
]  # fmt: skip


def open_task_store(state_url: str | None = None, **kwargs: Any) -> TaskStore:
    """The task store for `state_url` (HIVE_MCP_STATE_URL): Redis for redis/rediss/unix URLs, else SQLite
    (`path`, default in the hive home)."""
    if not state_url:
        from .sqlite_store import SQLiteTaskStore

        return SQLiteTaskStore(kwargs.pop("path", None))
    from .redis_store import RedisTaskStore

    return RedisTaskStore(state_url, **kwargs)
