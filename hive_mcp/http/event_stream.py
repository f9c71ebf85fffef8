"""The SDK's SSE responses (streamable HTTP), each event sent with no cancel scope of its own.

sse-starlette sends every event inside `anyio.move_on_after(send_timeout)`: a
cancel scope even when there is no timeout, and the SDK sets none. At a slow
stream's pace, where all of an event's code runs cold, entering and leaving that
scope costs an event more than the rest of its way to the socket. `EventStream`
sends an event straight when there is no timeout, and as sse-starlette does
otherwise. Either way a send that fails or is cancelled marks the response
interrupted, as sse-starlette's own does, so that no closing send follows it.
(`sdk_compat.send_events_with` has the SDK's transport use it.)
"""

from __future__ import annotations

from typing import Any

from sse_starlette import EventSourceResponse

__all__ = ["EventStream"]


class EventStream(EventSourceResponse):
    async def _send_with_timeout(self, send: Any, message: Any) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise
