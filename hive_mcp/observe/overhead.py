"""hive-mcp's own time per call, told to the caller: wall time minus the time spent waiting on the upstream
(`LLMResponse.upstream_wait_s`), in a result's `_meta` and in the HTTP response header `x-hive-overhead-ms`.

The header can only go out with the response's headers, so a call's overhead is told there when its result is
the first thing the response carries (a JSON response, or an SSE response whose first event is the result); a
call that sent progress first has already sent its headers, and tells it in `_meta` alone.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from ..asgi import App, Message, Receive, Scope, Send

__all__ = ["OVERHEAD_HEADER", "OVERHEAD_META_KEY", "CallClock", "OverheadHeader", "tell"]

OVERHEAD_META_KEY = "x-hive-overhead-ms"
"""The key of a result's `_meta` that holds the call's overhead in milliseconds."""
OVERHEAD_HEADER = b"x-hive-overhead-ms"
_STATE_KEY = "hive_overhead_ms"
"""Where `tell` leaves the overhead in the HTTP request's ASGI `state`, for `OverheadHeader`."""


class CallClock:
    """A call's wall time, from when it was made (construct it first thing)."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def overhead_s(self, upstream_wait_s: float) -> float:
        """The call's own time: wall time so far minus `upstream_wait_s` (never below zero)."""
        return max(0.0, self.elapsed_s() - upstream_wait_s)


def milliseconds(seconds: float) -> float:
    """How the overhead is told: milliseconds, to the microsecond."""
    return round(seconds * 1000.0, 3)


def tell(request: Any, overhead_s: float) -> dict[str, float]:
    """Leave the call's overhead for the HTTP response header (`request`: the HTTP request the call came in,
    `ctx.request_context.request`; None over stdio) and return the `_meta` entry that tells it in the result."""
    ms = milliseconds(overhead_s)
    scope = getattr(request, "scope", None)
    if isinstance(scope, MutableMapping):
        state = scope.setdefault("state", {})
        if isinstance(state, MutableMapping):
            state[_STATE_KEY] = ms
    return {OVERHEAD_META_KEY: ms}


class OverheadHeader:
    """ASGI middleware: a response's headers wait for its first body message, and then carry
    `x-hive-overhead-ms` if a call told its overhead by then (`tell`)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def send_told(message: Message) -> None:
            if message["type"] == "http.response.start" and not held:
                held.append(message)
                return
            if held and held[0] is not None:
                start, held[0] = held[0], None
                ms = (scope.get("state") or {}).get(_STATE_KEY)
                if ms is not None:
                    start = {**start, "headers": [*start.get("headers", ()), (OVERHEAD_HEADER, str(ms).encode())]}
                await send(start)
            await send(message)

        await self.app(scope, receive, send_told)
