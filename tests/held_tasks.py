"""A task store (the real one underneath) whose `finish` waits for `go`: a job that has its result is caught
storing its end."""

from __future__ import annotations

from typing import Any

import anyio

from hive_mcp.tasks import TaskRecord


class HeldEnd:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.finishing, self.go = anyio.Event(), anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def finish(self, task: TaskRecord) -> bool:
        self.finishing.set()
        await self.go.wait()
        return await self.store.finish(task)
