"""Raw task requests through the Python SDK's real client, for both protocol generations.

The SDK's client validates a `tools/call` answer as a `CallToolResult` and has no `tasks/*` methods, so these
send the request as the client would (its envelope and headers: `ClientSession._stamp`) on its dispatcher and
hand back the JSON answer unvalidated. `tasks=True` declares the 2026 tasks extension in the request's `_meta`.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client
from mcp.client.extension import ClientExtension, NotificationBinding
from mcp_types import CLIENT_CAPABILITIES_META_KEY, TaskStatusNotificationParams

from hive_mcp.tasks.records import TERMINAL
from hive_mcp.tasks.wire import EXTENSION_ID

WAIT = 10.0


async def raw(client: Client, method: str, params: dict[str, Any] | None = None, *, tasks: bool = True,
              headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    session = client.session
    data: dict[str, Any] = {"method": method, "params": dict(params or {})}
    opts: dict[str, Any] = {}
    session._stamp(data, opts)  # pyright: ignore[reportPrivateUsage]
    meta = data["params"].get("_meta")
    if tasks and isinstance(meta, dict) and CLIENT_CAPABILITIES_META_KEY in meta:
        caps = dict(meta[CLIENT_CAPABILITIES_META_KEY] or {})
        caps["extensions"] = {**(caps.get("extensions") or {}), EXTENSION_ID: {}}
        meta[CLIENT_CAPABILITIES_META_KEY] = caps
    if headers:
        opts.setdefault("headers", {}).update(headers)
    dispatcher = session._dispatcher  # pyright: ignore[reportPrivateUsage]
    return await dispatcher.send_raw_request(method, data["params"], opts)


async def until_ended(client: Client, task_id: str, **kwargs: Any) -> dict[str, Any]:
    """`tasks/get` at the interval the server suggests until the task has ended."""
    with anyio.fail_after(WAIT):
        while True:
            got = await raw(client, "tasks/get", {"taskId": task_id}, **kwargs)
            if got["status"] in TERMINAL:
                return got
            await anyio.sleep((got.get("pollIntervalMs") or got.get("pollInterval") or 50) / 1000)


class TaskStatuses(ClientExtension):
    """The `notifications/tasks/status` a 2025-11-25 client hears, for `Client(extensions=[...])`: the SDK's client
    hands no other way a notification its core tables lack. `wait(n)` waits until `n` have been heard."""

    identifier = "io.github.hive-mcp/test-task-statuses"

    def __init__(self) -> None:
        self.heard: list[TaskStatusNotificationParams] = []
        self._changed = anyio.Event()

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [NotificationBinding(method="notifications/tasks/status", params_type=TaskStatusNotificationParams,
                                    handler=self._hear)]

    async def _hear(self, params: TaskStatusNotificationParams) -> None:
        self.heard.append(params)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, count: int) -> list[TaskStatusNotificationParams]:
        with anyio.fail_after(WAIT):
            while len(self.heard) < count:
                await self._changed.wait()
        return self.heard
