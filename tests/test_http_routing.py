"""A streamable-HTTP session's messages routed to their event streams by the task that sends them
(hive_mcp/http/routing.py), and the served app's sessions routed so (hive_mcp/sdk_compat.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse

from hive_mcp.http import build_app
from hive_mcp.http.routing import InlineRouter
from hive_mcp.settings import load_settings

Pair = tuple[MemoryObjectSendStream[EventMessage], MemoryObjectReceiveStream[EventMessage]]


def progress(about: int | None = None) -> SessionMessage:
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progressToken": 1, "progress": 1})
    return SessionMessage(note, metadata=ServerMessageMetadata(related_request_id=about) if about is not None else None)


def answer(request_id: int) -> SessionMessage:
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result={}))


def pair(size: int = 16) -> Pair:
    return anyio.create_memory_object_stream[EventMessage](size)


class Store:
    """An event store keeping what it was given, each event numbered."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, Any]] = []

    async def store_event(self, stream_id: str, message: Any) -> str:
        self.stored.append((stream_id, message))
        return f"e{len(self.stored)}"


class Inner:
    """The SDK's own write stream behind the router: closed with it, never sent to."""

    closed = False

    async def send(self, item: SessionMessage) -> None:
        raise AssertionError("the router sent a message on to the SDK's router task")

    async def aclose(self) -> None:
        self.closed = True


def router(streams: dict[str, Pair], *, store: Store | None = None, json_response: bool = False) -> InlineRouter:
    return InlineRouter(Inner(), streams, event_store=store, json_response=json_response)


async def test_a_response_goes_to_the_stream_of_the_request_it_answers() -> None:
    streams = {"7": pair(), "8": pair(), GET_STREAM_KEY: pair()}
    await router(streams).send(answer(7))
    assert streams["7"][1].receive_nowait().message.id == 7
    for other in ("8", GET_STREAM_KEY):
        with pytest.raises(anyio.WouldBlock):
            streams[other][1].receive_nowait()


async def test_a_message_about_a_request_goes_to_its_stream_and_one_about_none_to_the_get_stream() -> None:
    streams = {"7": pair(), GET_STREAM_KEY: pair()}
    routed = router(streams)
    await routed.send(progress(about=7))
    await routed.send(progress())
    assert streams["7"][1].receive_nowait().message.method == "notifications/progress"
    assert streams[GET_STREAM_KEY][1].receive_nowait().message.method == "notifications/progress"
    with pytest.raises(anyio.WouldBlock):
        streams["7"][1].receive_nowait()


async def test_in_json_response_mode_a_message_about_a_request_goes_nowhere_and_is_not_stored() -> None:
    streams, store = {"7": pair(), GET_STREAM_KEY: pair()}, Store()
    routed = router(streams, store=store, json_response=True)
    await routed.send(progress(about=7))
    await routed.send(answer(7))
    assert streams["7"][1].receive_nowait().message.id == 7  # the response alone
    with pytest.raises(anyio.WouldBlock):
        streams["7"][1].receive_nowait()
    with pytest.raises(anyio.WouldBlock):
        streams[GET_STREAM_KEY][1].receive_nowait()
    assert [stream for stream, _ in store.stored] == ["7"]


async def test_with_an_event_store_each_message_is_stored_and_sent_with_its_event_id() -> None:
    streams, store = {"7": pair()}, Store()
    routed = router(streams, store=store)
    await routed.send(progress(about=7))
    await routed.send(answer(7))
    assert [stream for stream, _ in store.stored] == ["7", "7"]
    assert [streams["7"][1].receive_nowait().event_id for _ in range(2)] == ["e1", "e2"]


async def test_a_message_for_a_stream_gone_is_dropped_and_so_is_the_stream() -> None:
    streams, store = {"7": pair()}, Store()
    streams["7"][1].close()
    routed = router(streams, store=store)
    await routed.send(progress(about=7))
    await routed.send(progress(about=9))  # a request with no stream at all
    assert "7" not in streams
    assert [stream for stream, _ in store.stored] == ["7", "9"]  # kept for a client that reconnects and replays


async def test_a_full_stream_holds_its_sender_until_there_is_room() -> None:
    streams = {"7": pair(size=1)}
    routed = router(streams)
    await routed.send(progress(about=7))
    sent = anyio.Event()

    async def second() -> None:
        await routed.send(answer(7))
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert streams["7"][1].receive_nowait().message.method == "notifications/progress"
        await sent.wait()
    assert streams["7"][1].receive_nowait().message.id == 7


async def test_a_closed_router_refuses_to_send_and_closes_the_stream_behind_it() -> None:
    inner = Inner()
    routed = InlineRouter(inner, {"7": pair()}, event_store=None, json_response=False)
    async with routed:
        pass
    assert inner.closed
    with pytest.raises(anyio.ClosedResourceError):
        await routed.send(progress(about=7))


async def test_a_session_of_the_served_app_puts_a_message_on_its_request_stream_before_its_send_returns(
    tmp_path: Path,
) -> None:
    """Through the app `serve` runs: a session its manager opens sends a progress notification, and the request's
    stream holds it when `send` returns, with no router task to wake first. (The SDK's own sessions hand it to a
    router task, so the stream is still empty then.) Reaches into the manager and transport, as sdk_compat does."""
    server = MCPServer("routing")
    settings = load_settings({"transport": "http", "dump_dir": str(tmp_path)}, environ={}, cwd=str(tmp_path), export=False)
    build_app(server, settings, ())
    transport = server.session_manager._admit_session(None)  # pyright: ignore[reportPrivateUsage]
    assert transport is not None
    async with transport.connect() as (_, write):
        streams = pair()
        transport._request_streams["7"] = streams  # pyright: ignore[reportPrivateUsage]
        await write.send(progress(about=7))
        assert streams[1].receive_nowait().message.method == "notifications/progress"
