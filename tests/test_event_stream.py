"""The SDK's SSE responses over streamable HTTP are `EventStream`s: each event sent with no cancel scope of its
own when there is no send timeout, sse-starlette's way when there is one, and a failed send marks the response
interrupted either way (hive_mcp/http/event_stream.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp.server.streamable_http as transport
import pytest
from mcp.server.mcpserver import MCPServer
from sse_starlette import EventSourceResponse
from sse_starlette.event import ensure_bytes
from sse_starlette.sse import SendTimeoutError

from hive_mcp.http.app import build_app
from hive_mcp.http.event_stream import EventStream, encode
from hive_mcp.settings import load_settings

from .event_streams import Message, Running, serve

STALL_S = 0.05


async def events() -> AsyncIterator[dict[str, str]]:
    yield {"event": "message", "data": "one"}
    yield {"event": "message", "data": "two"}


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


async def test_send_now_sends_from_the_callers_task_while_the_response_waits_and_events_keep_their_order() -> None:
    async with Running() as running:
        assert await running.response.send_now({"event": "message", "data": "first"})
        assert running.bodies == [b"event: message\r\ndata: first\r\n\r\n"]  # on its way before send_now returned
        await running.writer.send({"event": "message", "data": "second"})
        await anyio.wait_all_tasks_blocked()
        assert running.bodies[1] == b"event: message\r\ndata: second\r\n\r\n"
    assert EventStream.of(running.writer) is running.response


async def test_send_now_declines_while_an_event_is_on_its_way_and_the_next_one_waits_its_turn() -> None:
    drained = anyio.Event()
    async with Running(stall=drained) as running:
        await running.writer.send({"event": "message", "data": "first"})
        await anyio.wait_all_tasks_blocked()  # the response's task waits in its send, holding the order
        assert not await running.response.send_now({"event": "message", "data": "second"})
        drained.set()
        await anyio.wait_all_tasks_blocked()
        assert [b.split(b"data: ")[1][:5] for b in running.bodies] == [b"first"]


async def test_send_now_declines_before_the_response_has_started() -> None:
    writer, reader = anyio.create_memory_object_stream[dict[str, str]](0)
    assert not await EventStream(reader, ping=0).send_now({"event": "message", "data": "early"})
    assert EventStream.of(object()) is None


async def test_a_failed_send_now_is_the_transport_closed_and_marks_the_response_interrupted() -> None:
    async with Running(fail=True) as running:
        with pytest.raises(anyio.BrokenResourceError):
            await running.response.send_now({"event": "message", "data": "lost"})
        assert running.response._send_interrupted
        assert not await running.response.send_now({"event": "message", "data": "after"})


@pytest.mark.parametrize(
    "event",
    [
        {"event": "message", "data": '{"jsonrpc":"2.0","method":"notifications/progress","params":{"x":"é\\n"}}'},
        {"event": "message", "data": "one line\u2028not two"},
        {"event": "message", "data": "two\nlines"},
        {"event": "message", "data": "a\r\nb\rc"},
        {"event": "message", "data": "x", "id": "7"},
        {"event": "ping", "data": "x"},
        {"data": "x"},
    ],
)
@pytest.mark.parametrize("sep", ["\r\n", "\n"])
def test_an_event_sent_now_is_framed_as_sse_starlette_frames_it(event: dict[str, str], sep: str) -> None:
    assert encode(event, sep) == ensure_bytes(event, sep)
