"""A call's progress written as plain JSON by the transport's own write stream (hive_mcp/mcp/relay.py's
`progress_report`, hive_mcp/sdk_compat.py's `request_lane`), not built into the SDK's models first.

A real SDK client and a real low-level server over memory streams; the server's write stream is one of ours
(`SessionWriteStream`), passing every message on to the client and noting what it was given as plain JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.message import SessionMessage

from hive_mcp import sdk_compat
from hive_mcp.mcp.relay import Report, progress_report
from hive_mcp.session_stream import SessionWriteStream
from hive_mcp.tasks.wire import detached


class Forward(SessionWriteStream):
    """Every message on to the client's stream; what came as plain JSON (`notify`) noted as well."""

    def __init__(self, to_client: Any) -> None:
        super().__init__()
        self._to_client = to_client
        self.notified: list[tuple[Any, str, dict[str, Any]]] = []

    async def notify(self, related_request_id: Any, method: str, params: dict[str, Any]) -> None:
        self.notified.append((related_request_id, method, params))
        await super().notify(related_request_id, method, params)

    async def _deliver(self, item: SessionMessage) -> None:
        await self._to_client.send(item)


class Served:
    """A server whose `report` tool sends two progress notifications through `progress_report`, keeping its
    report and the lanes it found (of its session, and of that session detached for a task)."""

    def __init__(self) -> None:
        self.server = MCPServer("lane")
        self.reports: list[Report] = []
        self.lanes: list[sdk_compat.RequestLane | None] = []
        self.detached_lanes: list[sdk_compat.RequestLane | None] = []

        @self.server.tool()
        async def report(ctx: Context) -> str:
            send = progress_report(ctx)
            self.reports.append(send)
            self.lanes.append(sdk_compat.request_lane(ctx.request_context.session))
            self.detached_lanes.append(sdk_compat.request_lane(detached(ctx.request_context, relay=True)[1]))
            await send(1, "a")
            await send(2, "b")
            return "done"

    @asynccontextmanager
    async def client(self) -> AsyncIterator[tuple[ClientSession, Forward]]:
        low = sdk_compat.lowlevel_server(self.server)
        async with create_client_server_memory_streams() as ((client_read, client_write), (server_read, to_client)):
            forward = Forward(to_client)
            async with anyio.create_task_group() as tg:
                tg.start_soon(low.run, server_read, forward, low.create_initialization_options())
                async with ClientSession(client_read, client_write) as session:
                    await session.initialize()
                    yield session, forward
                tg.cancel_scope.cancel()


async def test_a_calls_progress_is_written_by_the_transports_write_stream_as_plain_json() -> None:
    served = Served()
    heard: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, message))

    with anyio.fail_after(10):
        async with served.client() as (client, forward):
            result = await client.call_tool("report", {}, progress_callback=on_progress)
    assert not result.is_error
    assert heard == [(1, "a"), (2, "b")]
    lane = served.lanes[0]
    assert lane is not None
    assert [params for _, _, params in forward.notified] == [
        {"progressToken": lane.progress_token, "progress": 1, "message": "a"},
        {"progressToken": lane.progress_token, "progress": 2, "message": "b"},
    ]
    assert {(about, method) for about, method, _ in forward.notified} == {(lane.request_id, "notifications/progress")}


async def test_without_a_progress_token_nothing_is_sent() -> None:
    served = Served()
    with anyio.fail_after(10):
        async with served.client() as (client, forward):
            await client.call_tool("report", {})
    assert served.lanes == [None]
    assert forward.notified == []


async def test_progress_reported_after_its_request_was_answered_is_dropped_as_the_sdk_drops_it() -> None:
    served = Served()
    heard: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append(message)

    with anyio.fail_after(10):
        async with served.client() as (client, forward):
            await client.call_tool("report", {}, progress_callback=on_progress)
            await served.reports[0](3, "late")
            await client.send_ping()  # anything sent before the ping's answer has reached the client
    assert [params["message"] for _, _, params in forward.notified] == ["a", "b"]
    assert heard == ["a", "b"]


async def test_a_task_that_outlives_its_request_sends_progress_its_own_way() -> None:
    """A job's detached session tags its progress with the task (tasks.wire): no lane around it."""
    served = Served()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    with anyio.fail_after(10):
        async with served.client() as (client, _):
            await client.call_tool("report", {}, progress_callback=on_progress)
    assert served.lanes[0] is not None
    assert served.detached_lanes == [None]
