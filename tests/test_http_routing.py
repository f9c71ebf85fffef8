"""A streamable-HTTP session's messages routed to their event streams by the task that sends them
(hive_mcp/http/routing.py), and the served app's sessions routed so (hive_mcp/sdk_compat.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCResponse

from hive_mcp.http.app import build_app
from hive_mcp.http.routing import InlineRouter
from hive_mcp.session_stream import notification_json
from hive_mcp.settings import load_settings

from .event_streams import Running

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


def sse_event(event: EventMessage) -> dict[str, str]:
    return {"event": "message", "data": event.message.model_dump_json(by_alias=True, exclude_unset=True)}


def router(
    streams: dict[str, Pair], *, store: Store | None = None, json_response: bool = False,
    responses: dict[str, MemoryObjectSendStream[dict[str, str]]] | None = None,
    to_event: Callable[[EventMessage], dict[str, str]] = sse_event,
) -> InlineRouter:  # fmt: skip
    return InlineRouter(
        Inner(), streams, event_store=store, json_response=json_response, responses=responses, to_event=to_event
    )


class Waiting:
    """Request 7's stream and its SSE response as the SDK's transport has them while a call streams: the writer
    task reading the stream (unless `writer_busy`: it holds a message of the request already) and the response
    waiting for an event. What each got."""

    def __init__(self, *, writer_busy: bool = False, store: Store | None = None) -> None:
        self.streams = {"7": pair()}
        self.to_response, self._response = anyio.create_memory_object_stream[dict[str, str]](0)
        self.router = router(self.streams, store=store, responses={"7": self.to_response}, to_event=self._to_event)
        self.made_from_models: list[EventMessage] = []
        self.writer_busy = writer_busy
        self.by_writer: list[EventMessage] = []
        self.by_response: list[dict[str, str]] = []

    def _to_event(self, event: EventMessage) -> dict[str, str]:
        self.made_from_models.append(event)
        return sse_event(event)

    async def _writer(self) -> None:
        async for event in self.streams["7"][1]:
            self.by_writer.append(event)

    async def _responder(self) -> None:
        async for event in self._response:
            self.by_response.append(event)

    async def route(self, message: SessionMessage) -> bool:
        """Send `message`; whether the response had been handed it when `send` returned."""
        return await self.sending(lambda: self.router.send(message))

    async def notify(self, params: dict[str, Any]) -> bool:
        """A progress notification about request 7 given as plain JSON; whether the response had been handed it
        when `notify` returned."""
        return await self.sending(lambda: self.router.notify(7, "notifications/progress", params))

    async def sending(self, send: Callable[[], Awaitable[None]]) -> bool:
        async with anyio.create_task_group() as tg:
            if self.writer_busy:
                self.streams["7"][0].send_nowait(EventMessage(answer(6).message))  # not read yet
            else:
                tg.start_soon(self._writer)
            tg.start_soon(self._responder)
            await anyio.wait_all_tasks_blocked()
            await send()
            handed = self.to_response.statistics().tasks_waiting_receive == 0
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        return handed


async def test_a_notification_is_handed_to_its_sse_response_at_once_when_nothing_of_its_request_is_on_the_way() -> None:
    """The writer task idle and the response waiting: the event is the response's before `send` returns, the
    SSE event the transport would have made, and the writer task never sees it."""
    waiting = Waiting()
    note = progress(about=7)
    assert await waiting.route(note)
    assert waiting.by_response == [sse_event(EventMessage(note.message))]
    assert waiting.by_writer == []


async def test_a_notification_waits_its_turn_behind_what_the_writer_task_holds_and_so_does_a_response() -> None:
    """Order is kept: with a message of the request still in its stream, the notification goes after it; a
    response always goes by the writer task, which ends the event stream after it."""
    busy = Waiting(writer_busy=True)
    assert not await busy.route(progress(about=7))
    assert busy.by_response == []
    queued = busy.streams["7"][1]
    assert [getattr(queued.receive_nowait().message, "method", None) for _ in range(2)] == [
        None, "notifications/progress"
    ]  # fmt: skip
    idle = Waiting()
    assert not await idle.route(answer(7))
    assert [e.message.id for e in idle.by_writer] == [7]
    assert idle.by_response == []


async def test_a_stored_notification_goes_by_the_writer_task_with_its_event_id() -> None:
    waiting = Waiting(store=Store())
    assert not await waiting.route(progress(about=7))
    assert [e.event_id for e in waiting.by_writer] == ["e1"]
    assert waiting.by_response == []


PARAMS = {"progressToken": 1, "progress": 1, "message": "été"}


async def test_a_notification_given_as_plain_json_is_handed_to_the_idle_response_as_the_sdk_would_write_it() -> None:
    """The same SSE event the transport makes from the SDK's models, made here from the JSON (no model of the
    message, no `to_event`), and handed over at once."""
    waiting = Waiting()
    assert await waiting.notify(PARAMS)
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=PARAMS)
    assert waiting.by_response == [sse_event(EventMessage(note))]
    assert waiting.made_from_models == []
    assert waiting.by_writer == []


async def test_a_notification_given_as_plain_json_waits_its_turn_or_is_stored_as_any_message() -> None:
    """Behind what the writer task holds, or with an event store (an event id to replay by), it goes as a
    message of the SDK's models, by the writer task; in JSON-response mode nowhere."""
    busy = Waiting(writer_busy=True)
    assert not await busy.notify(PARAMS)
    queued = busy.streams["7"][1]
    assert [getattr(queued.receive_nowait().message, "params", None) for _ in range(2)] == [None, PARAMS]
    stored = Waiting(store=Store())
    assert not await stored.notify(PARAMS)
    assert [(e.event_id, e.message.params) for e in stored.by_writer] == [("e1", PARAMS)]
    assert stored.by_response == []
    streams = {"7": pair()}
    await router(streams, json_response=True).notify(7, "notifications/progress", PARAMS)
    with pytest.raises(anyio.WouldBlock):
        streams["7"][1].receive_nowait()


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
    with pytest.raises(anyio.ClosedResourceError):
        await routed.notify(7, "notifications/progress", PARAMS)


def served_transport(tmp_path: Path) -> Any:
    """A stateful session's transport as the app `serve` runs makes it (reaching into the manager, as sdk_compat
    does)."""
    server = MCPServer("routing")
    settings = load_settings({"transport": "http", "dump_dir": str(tmp_path)}, environ={}, cwd=str(tmp_path), export=False)
    build_app(server, settings, ())
    transport = server.session_manager._admit_session(None)  # pyright: ignore[reportPrivateUsage]
    assert transport is not None
    return transport


async def test_a_session_of_the_served_app_puts_a_message_on_its_request_stream_before_its_send_returns(
    tmp_path: Path,
) -> None:
    """Through the app `serve` runs: a session its manager opens sends a progress notification, and the request's
    stream holds it when `send` returns, with no router task to wake first. (The SDK's own sessions hand it to a
    router task, so the stream is still empty then.) Reaches into the manager and transport, as sdk_compat does."""
    transport = served_transport(tmp_path)
    async with transport.connect() as (_, write):
        streams = pair()
        transport._request_streams["7"] = streams  # pyright: ignore[reportPrivateUsage]
        await write.send(progress(about=7))
        assert streams[1].receive_nowait().message.method == "notifications/progress"


async def test_a_session_of_the_served_app_hands_a_notification_to_the_waiting_sse_response_as_the_sdk_would_write_it(
    tmp_path: Path,
) -> None:
    """Through the app `serve` runs: with the request's writer task and SSE response waiting, as while a call
    streams, the notification is the response's when `send` returns, made into an SSE event by the transport's
    own code. Reaches into the manager and transport, as sdk_compat does."""
    transport = served_transport(tmp_path)
    note = progress(about=7)
    async with transport.connect() as (_, write), anyio.create_task_group() as tg:
        streams = pair()
        to_response, from_response = anyio.create_memory_object_stream[dict[str, str]](0)
        transport._request_streams["7"] = streams  # pyright: ignore[reportPrivateUsage]
        transport._sse_stream_writers["7"] = to_response  # pyright: ignore[reportPrivateUsage]
        tg.start_soon(streams[1].receive)
        got: list[dict[str, str]] = []

        async def respond() -> None:
            got.append(await from_response.receive())

        tg.start_soon(respond)
        await anyio.wait_all_tasks_blocked()
        await write.send(note)
        assert to_response.statistics().tasks_waiting_receive == 0  # handed over
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    expected = transport._create_event_data(EventMessage(note.message))  # pyright: ignore[reportPrivateUsage]
    assert got == [expected]


async def test_a_notification_given_as_plain_json_is_sent_to_the_client_by_the_notifying_task() -> None:
    """With the SDK's SSE response an `EventStream` waiting for its next event, a notification given as plain JSON
    has gone to the ASGI send when `notify` returns: the response's task is not woken for it."""
    streams = {"7": pair()}
    async with Running() as running, anyio.create_task_group() as tg:
        routed = router(streams, responses={"7": running.writer})
        tg.start_soon(streams["7"][1].receive)  # the writer task, waiting
        await anyio.wait_all_tasks_blocked()
        await routed.notify(7, "notifications/progress", PARAMS)
        line = notification_json("notifications/progress", PARAMS).encode()
        assert running.bodies == [b"event: message\r\ndata: " + line + b"\r\n\r\n"]
        tg.cancel_scope.cancel()
