"""An `EventStream` served as the SDK's transport serves one for a POST, with an ASGI send that records what it
is given (tests/test_event_stream.py, tests/test_http_routing.py)."""

from __future__ import annotations

from typing import Any

import anyio

from hive_mcp.http.event_stream import EventStream

Message = dict[str, Any]


async def never_disconnects() -> Message:
    await anyio.Event().wait()
    raise AssertionError("unreachable")


async def serve(response: EventStream, send: Any) -> None:
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    await response(scope, never_disconnects, send)


class Running:
    """An `EventStream` reading a memory stream, as the SDK's transport makes one for a POST, served with an ASGI
    send that records each body (with `stall`, waits on it before taking one; with `fail`, the client is gone)."""

    def __init__(self, *, stall: anyio.Event | None = None, fail: bool = False) -> None:
        self.writer, reader = anyio.create_memory_object_stream[dict[str, str]](0)
        self.response = EventStream(reader, ping=0)
        self.bodies: list[bytes] = []
        self.stall = stall
        self.fail = fail

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if self.fail:
                raise OSError("the client is gone")
            if self.stall is not None:
                await self.stall.wait()
            self.bodies.append(message["body"])

    async def __aenter__(self) -> Running:
        self._tg = await anyio.create_task_group().__aenter__()
        self._tg.start_soon(serve, self.response, self.send)
        await anyio.wait_all_tasks_blocked()  # started, and waiting for its first event
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(*exc)
