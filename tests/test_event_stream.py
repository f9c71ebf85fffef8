"""The SDK's SSE responses over streamable HTTP are `EventStream`s: each event sent with no cancel scope of its
own when there is no send timeout, sse-starlette's way when there is one, and a failed send marks the response
interrupted either way (hive_mcp/http/event_stream.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp.server.streamable_http as transport
import pytest
from mcp.server.mcpserver import MCPServer
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError

from hive_mcp.http import build_app
from hive_mcp.http.event_stream import EventStream
from hive_mcp.settings import load_settings

Message = dict[str, Any]
STALL_S = 0.05


async def events() -> AsyncIterator[dict[str, str]]:
    yield {"event": "message", "data": "one"}
    yield {"event": "message", "data": "two"}


async def never_disconnects() -> Message:
    await anyio.Event().wait()
    raise AssertionError("unreachable")


async def serve(response: EventStream, send: Any) -> None:
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    await response(scope, never_disconnects, send)


def test_a_server_over_streamable_http_makes_its_event_streams_ours(tmp_path: Path) -> None:
    transport.EventSourceResponse = EventSourceResponse  # as the SDK has it before any app is built here
    settings = load_settings({"transport": "http", "dump_dir": str(tmp_path)}, environ={}, cwd=str(tmp_path), export=False)
    build_app(MCPServer("events"), settings, ())
    assert transport.EventSourceResponse is EventStream


async def test_without_a_send_timeout_every_event_is_sent_in_order_and_the_stream_closed() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await serve(EventStream(events(), ping=0), send)
    bodies = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["type"] == "http.response.start"
    assert bodies[0].startswith(b"event: message") and b"data: one" in bodies[0] and b"data: two" in bodies[1]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_an_event_whose_send_fails_marks_the_response_interrupted() -> None:
    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the client is gone")

    response = EventStream(events(), ping=0)
    with pytest.raises(OSError, match="client is gone"):
        await serve(response, send)
    assert response._send_interrupted


async def test_with_a_send_timeout_a_stalled_send_still_times_out() -> None:
    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            await anyio.Event().wait()

    response = EventStream(events(), ping=0, send_timeout=STALL_S)
    with pytest.raises(SendTimeoutError):
        await serve(response, send)
    assert response._send_interrupted
