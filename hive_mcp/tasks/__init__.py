"""Tasks: calls that outlive their request. The engine (`TaskEngine`), its stores (`sqlite_store`,
`redis_store`: `hive_mcp.backends` opens the state URL's kind), both protocol generations on the wire (`wire`),
and the rule for when a completion becomes a task unasked (`policy`)."""

from __future__ import annotations

from .engine import Job, TaskEngine, TaskNotFound, TaskStore, TooManyTasks
from .policy import runs_long
from .records import TaskRecord

__all__ = [
    "Job", "TaskEngine", "TaskNotFound", "TaskRecord", "TaskStore", "TooManyTasks", "runs_long",
]  # fmt: skip

