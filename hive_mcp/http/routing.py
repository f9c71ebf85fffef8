"""A streamable-HTTP session's messages put on their event streams by the task that sends them.

The SDK's transport gives a session a memory stream that one router task reads,
putting each message on the event stream of the request it belongs to. Every
message then waits for that task to wake: for a streamed call, each progress
notification pays two more turns of the event loop before it reaches the wire.
`InlineRouter` is the session's write stream instead and routes by the same rules
where the message is sent (hive_mcp/sdk_compat.py installs it in the app's
sessions).

A request's stream is read by the SDK's writer task, which turns each message into
an SSE event and hands it to the request's SSE response: two more turns of the
loop. A notification is handed to the response straight away when neither holds
anything of that request (see `InlineRouter._to_response`), and sent to the client
by the task that sends it when the response is waiting for it (`EventStream.send_now`),
a turn of the loop sooner than the response's task would. The relay's progress
comes as plain JSON (`InlineRouter.notify`): its SSE event is made from that, with
no model of the message built first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import anyio
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCResponse, RequestId

from ..session_stream import SessionWriteStream, notification_json
from .event_stream import EventStream

__all__ = ["InlineRouter"]


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class InlineRouter(SessionWriteStream):
    """A session's write stream that routes each message itself:

    - a response to the stream of the request it answers;
    - a message about a request (`related_request_id`) to that request's stream, or nowhere in JSON-response
      mode, where a request's body holds its response alone;
    - anything else to the standalone GET stream.

    With an event store each message is stored first, whether or not its stream is open, so a client that
    reconnects gets it by replay. A message whose stream is gone is dropped, and so is the stream. A full
    stream holds only the task sending to it. Closing it closes `inner` too, the SDK's own write stream it
    stands in for.
    """

    def __init__(
        self, inner: _Closable, streams: dict[str, Any], *, event_store: Any, json_response: bool,
        responses: dict[str, Any] | None = None, to_event: Callable[[EventMessage], Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self._inner = inner
        self._streams = streams
        """Each open request's (send, receive) pair of event streams, by request id as text: the transport's own."""
        self._event_store = event_store
        self._json_response = json_response
        self._responses = responses
        """Each open POST's SSE response, the send side of the stream it reads its events from, by request id as
        text; `to_event` makes the SSE event of a message. Both the transport's own."""
        self._to_event = to_event

    def _stream_of(self, item: SessionMessage) -> str | None:
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            return str(message.id)
        metadata = item.metadata
        if isinstance(metadata, ServerMessageMetadata) and metadata.related_request_id is not None:
            return None if self._json_response else str(metadata.related_request_id)
        return GET_STREAM_KEY

    async def _deliver(self, item: SessionMessage) -> None:
        key = self._stream_of(item)
        if key is None:
            return
        event_id = await self._event_store.store_event(key, item.message) if self._event_store else None
        pair = self._streams.get(key)
        if pair is None:
            return
        event = EventMessage(item.message, event_id)
        if await self._to_response(key, event):
            return
        try:
            try:
                pair[0].send_nowait(event)
            except anyio.WouldBlock:
                await pair[0].send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._streams.pop(key, None)

    async def _notify(self, related_request_id: RequestId, method: str, params: dict[str, Any]) -> None:
        """A notification about a request, made its SSE event here when the request's SSE response can take it
        at once (see `_to_response`); else the way of any message."""
        response = self._idle_response(str(related_request_id)) if self._event_store is None else None
        if response is not None:
            event = {"event": "message", "data": notification_json(method, params)}
            if await _give(response, event):
                return
        await super()._notify(related_request_id, method, params)

    async def _to_response(self, key: str, event: EventMessage) -> bool:
        """Give a notification to its request's SSE response at once, if the response is idle (`_idle_response`).
        A stored event, or a response (after which the writer task ends the event stream), goes by the request's
        stream. Whether the response took it."""
        if self._to_event is None or event.event_id is not None:
            return False
        if isinstance(event.message, JSONRPCResponse | JSONRPCError):
            return False
        response = self._idle_response(key)
        return response is not None and await _give(response, self._to_event(event))

    def _idle_response(self, key: str) -> Any | None:
        """Request `key`'s SSE response if nothing of that request is on its way there: the request's stream
        empty with the writer task waiting on it, and the response waiting for an event (checked as it is
        handed one: its stream holds none)."""
        response = self._responses.get(key) if self._responses is not None else None
        pair = self._streams.get(key)
        if response is None or pair is None:
            return None
        waiting = pair[0].statistics()
        if waiting.current_buffer_used or not waiting.tasks_waiting_receive:
            return None
        return response

    async def aclose(self) -> None:
        await super().aclose()
        await self._inner.aclose()


async def _give(response: Any, sse_event: Any) -> bool:
    """Whether the SSE response, waiting for an event, took `sse_event`: sent from this task when the response is
    an `EventStream` that can (`EventStream.send_now`), else handed to the response's task."""
    stream = EventStream.of(response)
    if stream is not None and await stream.send_now(sse_event):
        return True
    try:
        response.send_nowait(sse_event)
    except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return False
    return True
