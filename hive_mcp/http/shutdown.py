"""Shutdown: a grace period for calls in flight, and responses that end exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import sdk_compat
from ..jsonrpc import SHUTDOWN_ERROR_CODE
from ..asgi import MCP_PATH, MESSAGE_PATH, SSE_PATH, App, Message, Receive, Scope, Send, respond

__all__ = ["Shutdown", "let_event_streams_end"]

logger = logging.getLogger("hive_mcp.http")


class Shutdown:
    """What happens to open requests when the server is told to stop (SIGTERM, Ctrl-C).

    uvicorn stops accepting connections and waits for open responses. Left at
    that, streams that never end on their own (streamable HTTP's standing GET,
    an idle legacy SSE stream) would hold the process for the whole grace period,
    and calls still running at its end would be cut off with no answer. So, as
    shutdown begins (`begin`):

    - standing streams that carry no answers end at once;
    - a legacy SSE stream ends as soon as every call posted for its session has
      been answered on it;
    - call responses in flight continue.

    When the grace period is over (`expire`), each call still unanswered gets a
    JSON-RPC error saying the server shut down, on the stream its answer was due
    on, and that stream ends. The calls themselves are then cancelled with the
    server (which closes their upstream connections).

    To know which calls are unanswered, `_Exchange` reads the JSON-RPC ids of the
    requests POSTed and watches the answers on the way out.

    Work that outlives its request (the tasks this instance runs) is stopped by
    each of `drains`, started with the grace period as shutdown begins; the
    application's own shutdown (the ASGI lifespan's) waits for them to end.
    Once that shutdown is over, each of `closes` runs (blocking, in a worker
    thread, in order) before it is reported to the server: what the calls
    ended during the drain owe (the spend ledger's rows, its reservations) is
    written and released while the process still serves, not left to exit
    hooks, which a process ended by a signal never runs. Then each of `acloses`
    is awaited on the serving loop, in order (the conversation store, which
    gives back the turns this process holds, on the loop its work ran on).
    """

    def __init__(
        self,
        grace_s: float,
        drains: Sequence[Callable[[float], Awaitable[object]]] = (),
        closes: Sequence[Callable[[], object]] = (),
        acloses: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> None:
        self.grace_s = grace_s
        self.drains = tuple(drains)
        self.closes = tuple(closes)
        self.acloses = tuple(acloses)
        self._draining: list[asyncio.Future[object]] = []
        self.draining = False
        self.expired = False
        self.exchanges: set[_Exchange] = set()
        self.pending: dict[str, set[Any]] = {}
        """Legacy SSE: session id -> ids of requests POSTed to /messages/ and not yet answered on /sse."""
        self._timer: asyncio.TimerHandle | None = None

    def wrap(self, app: App) -> App:
        async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope.get("type")
            if kind == "lifespan":
                await app(scope, self._after_drains(receive), self._closing(send))
                return
            if kind != "http":
                await app(scope, receive, send)
                return
            await _Exchange(self, scope).run(app, receive, send)

        return tracked

    def begin(self) -> None:
        """Shutdown has begun: end idle streams; give the rest `grace_s`."""
        if self.draining:
            return
        self.draining = True
        busy = self.calls_in_flight()
        logger.info("shutting down: %d call(s) in flight get up to %g s to finish", busy, self.grace_s)
        for ex in list(self.exchanges):
            ex.drain()
        self._start_drains(self.grace_s)
        self._timer = asyncio.get_running_loop().call_later(self.grace_s, self.expire)

    def _start_drains(self, grace_s: float) -> None:
        self._draining = [asyncio.ensure_future(drain(grace_s)) for drain in self.drains]

    def _after_drains(self, receive: Receive) -> Receive:
        """`receive` of the lifespan, which hands on `lifespan.shutdown` once every drain has ended (begun
        with no grace period if shutdown never began)."""

        async def received() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                if not self.draining:
                    self._start_drains(0.0)
                if self._draining:
                    await asyncio.gather(*self._draining, return_exceptions=True)
            return message

        return received

    def _closing(self, send: Send) -> Send:
        """`send` of the lifespan, which reports the application's shutdown once each of `closes` has run."""

        async def sending(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.close()
            await send(message)

        return sending

    async def close(self) -> None:
        """Run each of `closes` (in a worker thread, in order), then await each of `acloses`; one that fails is
        one line and the rest still run."""
        import anyio

        steps: list[tuple[object, Callable[[], Awaitable[object]]]] = [
            (close, lambda close=close: anyio.to_thread.run_sync(close)) for close in self.closes
        ]
        for named, step in [*steps, *((aclose, aclose) for aclose in self.acloses)]:
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - the others still run, and the server still stops
                logger.warning("shutdown: %s failed: %s", getattr(named, "__qualname__", named), exc)

    def expire(self) -> None:
        """The grace period is over: answer what is left with an error and end every stream."""
        self.expired = True
        let_event_streams_end(True)
        left = self.calls_in_flight()
        if left:
            logger.warning("shutdown grace period (%g s) over: %d call(s) answered with an error", self.grace_s, left)
        for ex in list(self.exchanges):
            ex.stop()

    def calls_in_flight(self) -> int:
        return sum(len(ex.unanswered()) for ex in self.exchanges if not ex.complete)

    def error_for(self, request_id: Any) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {
                "code": SHUTDOWN_ERROR_CODE,
                "message": f"hive-mcp shut down: the call did not finish within the {self.grace_s:g} s shutdown "
                "grace period (HIVE_MCP_SHUTDOWN_GRACE_S); retry it",
            },
        }


def _request_ids(body: bytes) -> list[Any]:
    """The ids of the JSON-RPC requests in a POST body (none for notifications, responses or bad JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    return [m["id"] for m in items if isinstance(m, dict) and "method" in m and _is_id(m.get("id"))]


def _is_id(value: Any) -> bool:
    """A JSON-RPC id we track (a string or an integer; anything else is not answered by a well-behaved server)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _answered_id(data: bytes) -> tuple[bool, Any]:
    """(True, id) if an SSE event's data is a JSON-RPC response."""
    if b'"result"' not in data and b'"error"' not in data:
        return False, None
    try:
        message = json.loads(data)
    except ValueError:
        return False, None
    if isinstance(message, dict) and _is_id(message.get("id")) and ("result" in message or "error" in message):
        return True, message["id"]
    return False, None


class _Exchange:
    """One HTTP request and its response, as the app handles it.

    Keeps track of what `Shutdown` needs (the calls the request carries and
    whether they were answered), runs the app in a cancel scope so shutdown can
    end it, and makes the response end properly, exactly once: at shutdown the
    SDK's event streams end without the final body message (uvicorn logged "ASGI
    callable returned without completing response"), and the SSE endpoint then
    returned a second, empty response (uvicorn raised "Expected ASGI message
    'http.response.body'", with a traceback). Here a second response is dropped
    and a response left open is ended, so the client sees its stream close. An
    error the app raises once its response is complete is logged at DEBUG, and in one ERROR line when the
    client got a 500 for it.
    """

    def __init__(self, shutdown: Shutdown, scope: Scope) -> None:
        self.shutdown = shutdown
        self.scope = scope
        method, path = scope.get("method", ""), scope.get("path", "")
        if method == "GET" and path == MCP_PATH:
            self.kind = "standing"  # streamable HTTP's server-to-client stream: no answers to calls
        elif method == "POST" and path == MCP_PATH:
            self.kind = "post"  # answers come back on this response
        elif method == "GET" and path == SSE_PATH:
            self.kind = "sse"  # answers to the session's POSTs come back here
        elif method == "POST" and path.startswith(MESSAGE_PATH):
            self.kind = "message"  # accepted with 202; answered on the session's /sse stream
        else:
            self.kind = "other"
        self.session: str | None = None
        if self.kind == "message":
            self.session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id") or [None])[0]
        self.calls: set[Any] = set()  # "post": ids of this request's calls not yet answered
        self._message_ids: list[Any] = []  # "message": ids of the calls posted
        self.cancel_scope: Any = None
        self.started = self.complete = False
        self.status = 0
        self.event_stream = False
        self._body = bytearray()
        self._events = bytearray()
        self._send: Send | None = None

    # -- what shutdown asks ------------------------------------------------------------

    def unanswered(self) -> set[Any]:
        if self.kind == "post":
            return self.calls
        if self.kind == "sse" and self.session is not None:
            return self.shutdown.pending.get(self.session, set())
        return set()

    def owes_answers(self) -> bool:
        return bool(self.unanswered()) and not self.complete

    def drain(self) -> None:
        if self.kind == "standing" or (self.kind == "sse" and not self.owes_answers()):
            self._cancel()

    def stop(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    # -- the request ---------------------------------------------------------------------

    async def run(self, app: App, receive: Receive, send: Send) -> None:
        import anyio

        self._send = send
        self.shutdown.exchanges.add(self)
        try:
            with anyio.CancelScope() as self.cancel_scope:
                if self.shutdown.draining and self.kind in ("standing", "sse"):
                    self.cancel_scope.cancel()  # a stream opened after shutdown began: end it at once
                await app(self.scope, self._receive(receive), self._send_once)
        except Exception as exc:
            if not self.complete:
                raise
            # The client has its whole answer. The SDK's /sse endpoint raises ValueError after
            # answering a bad Host or Origin with 421/403, which uvicorn logged with a traceback: debug. A fault
            # the client saw as a 500 is the operator's to hear of, in one line.
            method, path = self.scope.get("method"), self.scope.get("path")
            if self.status >= 500:
                logger.error("%s %s: internal error (%s) answered %d", method, path, type(exc).__name__, self.status)
            logger.debug("%s %s: %r after the response was sent", method, path, exc, exc_info=self.status >= 500)
        finally:
            self.shutdown.exchanges.discard(self)
            with anyio.CancelScope(shield=True):
                await self._finish()

    def _receive(self, receive: Receive) -> Receive:
        if self.kind not in ("post", "message"):
            return receive

        async def capture() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                self._body += message.get("body", b"")
                if not message.get("more_body", False):
                    ids = _request_ids(bytes(self._body))
                    self._body = bytearray()
                    if self.kind == "post":
                        self.calls.update(ids)
                    else:
                        self._message_ids = ids
            return message

        return capture

    async def _send_once(self, message: Message) -> None:
        assert self._send is not None
        kind = message.get("type")
        if kind == "http.response.start":
            if self.started:
                return  # a second response to the same request
            self.started = True
            self.status = int(message.get("status", 0))
            content_type = next((v for k, v in message.get("headers", ()) if k.lower() == b"content-type"), b"")
            self.event_stream = content_type.lower().startswith(b"text/event-stream")
            if self.kind == "message" and self.status == 202 and self.session:
                self.shutdown.pending.setdefault(self.session, set()).update(self._message_ids)
        elif kind == "http.response.body":
            if self.complete or not self.started:
                return
            if self.event_stream and self.kind in ("post", "sse"):
                self._watch(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)
        if self.shutdown.draining and self.kind == "sse" and not self.owes_answers():
            self._cancel()  # every call of this session answered: the stream can end

    def _watch(self, chunk: bytes) -> None:
        """Note the answers (and, on /sse, the session id) in outgoing SSE events.

        Events are read only when what is held could hold an answer: else (a stream's every chunk) only the start
        of an unfinished event is kept, for the chunk that ends it."""
        self._events += chunk.replace(b"\r\n", b"\n")
        if (
            (self.kind == "post" or self.session is not None)
            and b'"result"' not in self._events and b'"error"' not in self._events
        ):  # fmt: skip
            if (end := self._events.rfind(b"\n\n")) >= 0:
                del self._events[: end + 2]
            return
        while (end := self._events.find(b"\n\n")) >= 0:
            event, self._events = bytes(self._events[:end]), self._events[end + 2 :]
            lines = event.split(b"\n")
            data = b"\n".join(line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:"))
            if self.kind == "sse" and self.session is None and b"event: endpoint" in lines:
                query = urlsplit(data.decode("latin-1")).query
                self.session = (parse_qs(query).get("session_id") or [None])[0]
                continue
            answered, request_id = _answered_id(data)
            if answered:
                self.unanswered().discard(request_id)

    async def _finish(self) -> None:
        """After the app: answer calls left unanswered at the end of the grace period; end the response."""
        assert self._send is not None
        if self.kind == "sse" and self.session is not None:
            owed = self.shutdown.pending.pop(self.session, set())
        else:
            owed = set(self.calls) if self.kind == "post" else set()
        try:
            if owed and self.shutdown.expired and not self.complete:
                errors = [self.shutdown.error_for(i) for i in sorted(owed, key=str)]
                if not self.started:
                    body = errors[0] if len(errors) == 1 else errors
                    await respond(self._send, 200, body)
                    self.started = self.complete = True
                    return
                if self.event_stream:
                    for error in errors:
                        data = json.dumps(error, separators=(",", ":")).encode()
                        await self._send(
                            {"type": "http.response.body", "body": b"event: message\ndata: " + data + b"\n\n",
                             "more_body": True}
                        )
            if self.started and not self.complete:
                self.complete = True
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client is already gone
            pass


def let_event_streams_end(now: bool) -> None:
    """Whether sse-starlette (the SDK's event streams) ends every stream as soon as shutdown begins.

    By default it does, within half a second of SIGTERM: every call in flight
    over streamable HTTP would lose its answer. `Shutdown` decides instead, so
    this is turned off while serving and on again when the grace period ends.
    """
    if now:
        sdk_compat.end_all_event_streams()
    else:
        sdk_compat.keep_event_streams_at_shutdown()
