"""A process that starts one task that never ends, prints its id and waits to be killed: the instance that dies
in tests/test_tasks_shared.py. `python -m tests.task_holder STORE LEASE_S` (STORE: a SQLite path or a redis URL)."""

from __future__ import annotations

import sys

from pathlib import Path

import anyio

from hive_mcp.tasks import TaskEngine
from hive_mcp.tasks.redis_store import RedisTaskStore
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore


async def main(where: str, lease_s: float) -> None:
    store = RedisTaskStore(where) if where.startswith("redis") else SQLiteTaskStore(Path(where))
    engine = TaskEngine(store, lease_s=lease_s)
    task = await engine.start("alice", "complete", anyio.sleep_forever)
    print(task.task_id, flush=True)
    await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], float(sys.argv[2]))
