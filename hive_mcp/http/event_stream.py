"""The SDK's SSE responses (streamable HTTP): an event can be sent by the task that makes it, and none is sent
in a cancel scope of its own when there is no send timeout.

An SSE response is a task reading the events of its request from a memory
stream and sending each to the client. An event handed to it waits a turn of
the loop for that task to wake, then goes through sse-starlette's send, which
enters `anyio.move_on_after(send_timeout)`: a cancel scope even when there is no
timeout, and the SDK sets none. At a slow stream's pace, where all of an event's
code runs cold, each costs an event more than the rest of its way to the socket.

`EventStream` is sse-starlette's response with two changes:
- with no send timeout, each event is sent straight, and a send that fails or
  is cancelled still marks the response interrupted, as sse-starlette's own
  does, so that no closing send follows it;
- `send_now` sends an event from the caller's task, when the response has
  started, is still open and is waiting for its next event. Every event, the
  response task's and `send_now`'s, is sent holding the response's one lock,
  so events leave in the order they were given even when a send waits for the
  socket to drain.

An event `send_now` sends is framed by `encode`: sse-starlette's bytes, a JSON-RPC
message's (a `message` event of one line of compact JSON) written straight.

`EventStream.of(writer)` finds the response reading from a memory stream's send
side, the SDK's handle on a request's response (`sdk_compat.memory_stream_key`).
`sdk_compat.send_events_with` has the SDK's transport make its responses from it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.event import ensure_bytes

from ..sdk_compat import memory_stream_key

__all__ = ["EventStream", "encode"]


def encode(event: dict[str, Any], sep: str) -> bytes:
    """`event` as sse-starlette encodes it (`ensure_bytes`). Every JSON-RPC message is a `message` event whose
    data is one line (compact JSON escapes its line breaks): its bytes are made here, with no `ServerSentEvent`
    built and no data split (a streamed call sends one for each chunk)."""
    data = event.get("data")
    one_line = isinstance(data, str) and "\n" not in data and "\r" not in data
    if one_line and len(event) == 2 and event.get("event") == "message":
        return f"event: message{sep}data: {data}{sep}{sep}".encode()
    return ensure_bytes(event, sep)


class EventStream(EventSourceResponse):
    _reading: ClassVar[weakref.WeakValueDictionary[int, EventStream]] = weakref.WeakValueDictionary()
    """Each live response by the memory stream it reads its events from: a response keeps its stream alive, so
    a key is never another stream's while its response lives."""

    def __init__(self, content: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(content, *args, **kwargs)
        self._order = asyncio.Lock()
        self._asgi_send: Any = None
        """The ASGI send of the response while it runs."""
        key = memory_stream_key(content)
        self._events = content if key is not None else None
        """The memory stream the response reads its events from; None for other content (no `send_now`)."""
        if key is not None:
            EventStream._reading[key] = self

    @classmethod
    def of(cls, writer: Any) -> EventStream | None:
        """The response reading the memory stream whose send side is `writer`, if there is one."""
        key = memory_stream_key(writer)
        return cls._reading.get(key) if key is not None else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._asgi_send = send if scope.get("type") == "http" else None
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._asgi_send = None

    async def send_now(self, event: dict[str, Any]) -> bool:
        """Send `event` (an SSE event as the SDK makes one) from this task if the response is waiting for its
        next event; whether it was sent. A client gone meanwhile is the transport closed
        (`anyio.BrokenResourceError`)."""
        send = self._asgi_send
        if (
            send is None or self._events is None or not self._response_started or not self.active
            or self._send_interrupted or self._order.locked() or not self._events.statistics().tasks_waiting_receive
        ):  # fmt: skip
            return False
        message = {"type": "http.response.body", "body": encode(event, self.sep), "more_body": True}
        async with self._order:
            try:
                await send(message)
            except Exception as exc:
                self._send_interrupted = True
                raise anyio.BrokenResourceError from exc
        return True

    async def _send_with_timeout(self, send: Any, message: Any) -> None:
        async with self._order:
            if self.send_timeout is not None:
                await super()._send_with_timeout(send, message)
                return
            try:
                await send(message)
            except BaseException:
                self._send_interrupted = True
                raise
