"""Every use of a private or provisional API of the MCP SDK and its dependencies, in one place.

Each entry names what it reaches for and why there is no public way. Each has a
test (tests/test_sdk_compat*.py) that fails with a message naming the installed
version when the attribute moves, so an upgrade breaks here, not deep in a
request handler. `check_http_and_stdio()` runs the HTTP and stdio checks and
returns the problems found.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Container
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp_types import ProgressToken, RequestId

from .session_stream import SessionWriteStream

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken
    from mcp.server.connection import Connection
    from mcp.server.lowlevel import Server
    from mcp.server.mcpserver import MCPServer

__all__ = [
    "check_http_and_stdio",
    "check_tasks",
    "end_all_event_streams",
    "installed",
    "keep_event_streams_at_shutdown",
    "lowlevel_server",
    "memory_stream_key",
    "open_session_ids",
    "request_lane",
    "route_sessions_inline",
    "run_sync_soon",
    "send_events_with",
    "session_connection",
]


def installed(distribution: str) -> str:
    """`name version` of an installed distribution, for the messages below."""
    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} (not installed)"


# ---------------------------------------------------------------------------
# MCP server
# ---------------------------------------------------------------------------
# `MCPServer._lowlevel_server`: paginated resource handlers are registered on the
# low-level server (MCPServer returns whole lists with no cursor; the SDK's own
# Client reaches it the same way), and stdio serving with our own ends on stdin
# and stdout (`hive_mcp.stdio`) needs its `run(read, write, options)`, as
# `MCPServer.run_stdio_async` calls it. MCPServer exposes no public accessor.


def lowlevel_server(server: MCPServer) -> Server[Any]:
    """The low-level `mcp.server.lowlevel.Server` inside an `MCPServer`."""
    from mcp.server.lowlevel import Server

    low = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    if not isinstance(low, Server):
        raise TypeError(f"MCPServer._lowlevel_server is not a low-level Server in {installed('mcp')}")
    return low


def session_connection(session: object) -> Connection | None:
    """The `Connection` behind a request's session proxy, or None when it has none.

    The SDK gives handlers no public handle on their connection; legacy sessions
    need it to be sent change notifications on their standalone channel.
    """
    from mcp.server.connection import Connection

    conn = getattr(session, "_connection", None)
    return conn if isinstance(conn, Connection) else None


# A request's `DispatchContext` (`ServerSession._request_outbound`, a `_JSONRPCDispatchContext` over a stream
# transport) with its `_request_id`, `_progress_token`, `_closed` and `_dispatcher` (its `_write_stream` and
# `_closed`): the SDK sends a request's progress only by building a notification's models, a message's, and its
# metadata's, and serializing the message from them, for every streamed chunk. Where the dispatcher writes to one
# of our write streams, the relay hands that stream the notification as plain JSON instead (`RequestLane`).


@dataclasses.dataclass(frozen=True)
class RequestLane:
    """The write stream of ours that a request's notifications go to, the request's id and its progress token."""

    stream: SessionWriteStream
    request_id: RequestId
    progress_token: ProgressToken
    _context: Any

    @property
    def open(self) -> bool:
        """Whether the SDK would still send for this request: its dispatch context and dispatcher not closed."""
        return not (self._context._closed or self._context._dispatcher._closed)  # pyright: ignore[reportPrivateUsage]


def request_lane(session: object) -> RequestLane | None:
    """Where the notifications of the request `session` serves go, when that is one of our write streams and the
    client asked for progress; None when not (the in-process dispatcher, the SDK's own transports, a task's
    detached session, which sends progress its own way): then the SDK's `report_progress` is the way."""
    from mcp.server.session import ServerSession
    from mcp.shared.jsonrpc_dispatcher import _JSONRPCDispatchContext  # pyright: ignore[reportPrivateUsage]

    if type(session) is not ServerSession:
        return None
    context = getattr(session, "_request_outbound", None)
    if not isinstance(context, _JSONRPCDispatchContext):
        return None
    token, request_id = context._progress_token, context._request_id  # pyright: ignore[reportPrivateUsage]
    stream = getattr(context._dispatcher, "_write_stream", None)  # pyright: ignore[reportPrivateUsage]
    if token is None or request_id is None or not isinstance(stream, SessionWriteStream):
        return None
    return RequestLane(stream, request_id, token, context)


def _lane_problems() -> list[str]:
    import anyio
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    try:
        from mcp.shared.jsonrpc_dispatcher import _JSONRPCDispatchContext  # pyright: ignore[reportPrivateUsage]
    except ImportError:
        return [f"mcp.shared.jsonrpc_dispatcher._JSONRPCDispatchContext is gone ({installed('mcp')})"]
    fields = {field.name for field in dataclasses.fields(_JSONRPCDispatchContext)}
    problems = [
        f"_JSONRPCDispatchContext.{name} is gone ({installed('mcp')})"
        for name in ("_request_id", "_progress_token", "_closed", "_dispatcher")
        if name not in fields
    ]
    write, read = anyio.create_memory_object_stream[Any](0)
    with write, read:
        dispatcher = JSONRPCDispatcher(read, write)
        problems += [
            f"JSONRPCDispatcher.{name} is gone ({installed('mcp')})"
            for name in ("_write_stream", "_closed")
            if not hasattr(dispatcher, name)
        ]
    return problems


def run_sync_soon(token: EventLoopToken, fn: Callable[[], None]) -> None:
    """Schedule `fn` on the loop `token` names, from any thread, without waiting for it.

    anyio's public `from_thread.run_sync(token=...)` blocks until the call ran; a
    writer thread must not wait on a loop that may be shutting down.
    """
    token.backend_class.run_sync_soon(fn, (), token.native_token)  # pyright: ignore[reportPrivateUsage]


# ---------------------------------------------------------------------------
# HTTP and stdio
# ---------------------------------------------------------------------------
# `StreamableHTTPSessionManager._server_instances`: the sessions open now. The
# manager drops a session when it ends (DELETE, idle timeout, crash) and says
# so to nobody; the per-caller session cap (`hive_mcp.http.sessions`) counts a
# caller's sessions that are still in it.


def open_session_ids(manager: Any) -> Container[str]:
    """The ids of the streamable-HTTP sessions `manager` holds open now."""
    instances = getattr(manager, "_server_instances", None)
    if not isinstance(instances, dict):
        raise TypeError(f"StreamableHTTPSessionManager._server_instances is gone in {installed('mcp')}")
    return instances


# `StreamableHTTPSessionManager._admit_session`, where a stateful session's transport is made, and that
# transport's `_request_streams`, `_event_store`, `_sse_stream_writers` and `_create_event_data`: the SDK has no
# factory for transports nor a way to give a session another write stream, and its router task costs every
# message two turns of the loop, its writer task each notification two more (`hive_mcp.http.routing`). A
# transport made there is given, by its class, a `connect` whose write stream is a router over the transport's
# own request streams, event store and SSE responses; the SDK's router task stays, idle. The class also has its
# own `_terminate_unanswered_request`, the transport's hook for a request its client cancelled, which the SDK
# answers -32800 where MCP has no answer sent.
# Stateless requests make their transport inside the manager's handler: they keep the SDK's router.


@functools.cache
def _inline_routed_manager(router: Callable[..., Any]) -> type:
    from mcp.server.streamable_http import StreamableHTTPServerTransport
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    class InlineRoutedTransport(StreamableHTTPServerTransport):
        @asynccontextmanager
        async def connect(self) -> AsyncIterator[tuple[Any, Any]]:  # type: ignore[override]
            async with super().connect() as (read, write):
                routed = router(
                    write, self._request_streams,  # pyright: ignore[reportPrivateUsage]
                    event_store=self._event_store,  # pyright: ignore[reportPrivateUsage]
                    json_response=self.is_json_response_enabled,
                    responses=self._sse_stream_writers,  # pyright: ignore[reportPrivateUsage]
                    to_event=self._create_event_data,  # pyright: ignore[reportPrivateUsage]
                )  # fmt: skip
                try:
                    yield read, routed
                finally:
                    await routed.aclose()  # before the transport closes its request streams

        async def _terminate_unanswered_request(self, request_id: Any) -> None:
            # A request settles unanswered when its client cancelled it (`notifications/cancelled`), and MCP has
            # the receiver of that send no response: the SDK's 2025-era transport answered -32800. Its event
            # stream ends instead, after what is already on its way to it. A JSON response must hold an answer.
            if self.is_json_response_enabled:
                await super()._terminate_unanswered_request(request_id)
                return
            pair = self._request_streams.get(str(request_id))  # pyright: ignore[reportPrivateUsage]
            if pair is not None:
                pair[0].close()

    class InlineRoutedManager(StreamableHTTPSessionManager):
        def _admit_session(self, requestor: Any) -> Any:
            transport = super()._admit_session(requestor)
            if transport is not None:
                transport.__class__ = InlineRoutedTransport
            return transport

    return InlineRoutedManager


def route_sessions_inline(manager: Any, router: Callable[..., Any]) -> None:
    """Have the stateful sessions `manager` opens from now on send their messages through `router(sdk_write_stream,
    request_streams, event_store=, json_response=, responses=, to_event=)`, a write stream of their own
    (`hive_mcp.http.routing`)."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    if not isinstance(manager, StreamableHTTPSessionManager) or not callable(getattr(manager, "_admit_session", None)):
        raise TypeError(f"StreamableHTTPSessionManager._admit_session is gone in {installed('mcp')}")
    manager.__class__ = _inline_routed_manager(router)


# The name `EventSourceResponse` in `mcp.server.streamable_http`, and sse-starlette's
# `EventSourceResponse._send_with_timeout`, `_send_interrupted` and `_response_started`:
# the transport makes its SSE responses from that class and offers no way to give it
# another; sse-starlette sends each event in a cancel scope of its own, timeout or
# not, and has no way to send an event from another task (`hive_mcp.http.event_stream`).
# The subclass given replaces it for the SDK's streamable HTTP transport alone (legacy
# SSE keeps its own import).


def send_events_with(response_class: type) -> None:
    """Have the SDK's streamable HTTP transport make its SSE responses from `response_class`, a subclass of
    the sse-starlette class it uses."""
    import mcp.server.streamable_http as transport
    from sse_starlette import EventSourceResponse

    if not isinstance(getattr(transport, "EventSourceResponse", None), type):
        raise TypeError(f"mcp.server.streamable_http.EventSourceResponse is gone in {installed('mcp')}")
    if not issubclass(response_class, EventSourceResponse):
        raise TypeError(f"{response_class.__name__} is not an sse-starlette EventSourceResponse")
    transport.EventSourceResponse = response_class


# anyio's `MemoryObjectSendStream._state` and `MemoryObjectReceiveStream._state`: the SDK's
# transport keeps a request's SSE response only as the send side of the memory stream the
# response reads (`_sse_stream_writers`), and anyio has no public way to tell which two
# ends belong together. They share their state; `memory_stream_key` is its identity.


_MEMORY_STREAM_ENDS = (MemoryObjectSendStream, MemoryObjectReceiveStream)


def memory_stream_key(end: Any) -> int | None:
    """What both ends of one anyio memory object stream share; None for anything else."""
    if not isinstance(end, _MEMORY_STREAM_ENDS):
        return None
    state = getattr(end, "_state", None)
    return None if state is None else id(state)


def _event_stream_problems() -> list[str]:
    import anyio
    import mcp.server.streamable_http as transport
    from sse_starlette import EventSourceResponse

    problems = []
    if not isinstance(getattr(transport, "EventSourceResponse", None), type):
        problems.append(f"mcp.server.streamable_http.EventSourceResponse is gone ({installed('mcp')})")
    if not callable(getattr(EventSourceResponse, "_send_with_timeout", None)):
        problems.append(f"EventSourceResponse._send_with_timeout is gone ({installed('sse-starlette')})")
    writer, reader = anyio.create_memory_object_stream[object](0)
    if memory_stream_key(writer) is None or memory_stream_key(writer) != memory_stream_key(reader):
        problems.append(f"anyio's memory object streams no longer share `_state` ({installed('anyio')})")
    writer.close()
    reader.close()
    response = EventSourceResponse(content=iter(()))
    for name in ("_send_interrupted", "_response_started", "active", "sep", "send_timeout"):
        if not hasattr(response, name):
            problems.append(f"EventSourceResponse.{name} is gone ({installed('sse-starlette')})")
    return problems


def _inline_routing_problems() -> list[str]:
    from mcp.server.streamable_http import StreamableHTTPServerTransport
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    problems = []
    if not callable(getattr(StreamableHTTPSessionManager, "_admit_session", None)):
        problems.append(f"StreamableHTTPSessionManager._admit_session is gone ({installed('mcp')})")
    if not callable(getattr(StreamableHTTPServerTransport, "_terminate_unanswered_request", None)):
        problems.append(f"StreamableHTTPServerTransport._terminate_unanswered_request is gone ({installed('mcp')})")
    transport = StreamableHTTPServerTransport(mcp_session_id=None)
    for name in ("_request_streams", "_event_store", "is_json_response_enabled", "_sse_stream_writers",
                 "_create_event_data"):
        if not hasattr(transport, name):
            problems.append(f"StreamableHTTPServerTransport.{name} is gone ({installed('mcp')})")
    return problems


# sse-starlette's process-global AppStatus. The SDK's event streams (streamable
# HTTP and legacy SSE) end themselves as soon as uvicorn begins to shut down,
# by default within half a second of SIGTERM, which would cut off the answer of
# every call in flight. sse-starlette offers no per-app or per-response switch:
# only the class attributes of AppStatus, shared by the whole process.
# `hive_mcp.http.shutdown` turns the automatic drain off while serving and ends
# every stream itself when the grace period is over.


def _app_status() -> Any:
    try:
        from sse_starlette.sse import AppStatus
    except ImportError:  # an SDK without sse-starlette: nothing to coordinate with
        return None
    return AppStatus


def keep_event_streams_at_shutdown() -> None:
    """Stop sse-starlette from ending every event stream when uvicorn begins to shut down."""
    status = _app_status()
    if status is not None:
        status.disable_automatic_graceful_drain()


def end_all_event_streams() -> None:
    """End every sse-starlette event stream of the process now."""
    status = _app_status()
    if status is not None:
        status.should_exit = True


def check_http_and_stdio(server: Any = None) -> list[str]:
    """What of the above the installed packages no longer provide, one line each (empty: all present)."""
    problems = _inline_routing_problems() + _event_stream_problems() + _lane_problems()
    status = _app_status()
    if status is None:
        problems.append(f"sse_starlette.sse.AppStatus is gone ({installed('sse-starlette')}, {installed('mcp')})")
    else:
        for name in ("should_exit", "disable_automatic_graceful_drain", "enable_automatic_graceful_drain"):
            if not hasattr(status, name):
                problems.append(f"sse_starlette.sse.AppStatus.{name} is gone ({installed('sse-starlette')})")
    if server is not None:
        low = getattr(server, "_lowlevel_server", None)
        if low is None or not callable(getattr(low, "run", None)) or not callable(
            getattr(low, "create_initialization_options", None)
        ):
            problems.append(
                f"MCPServer._lowlevel_server with run() and create_initialization_options() is gone "
                f"({installed('mcp')})"
            )
    return problems


# ---------------------------------------------------------------------------
# Tasks (hive_mcp.tasks.wire)
# ---------------------------------------------------------------------------
# The SDK has task types but serves no task. What the tasks wire leans on, all public but provisional:
# `MCPServer.middleware` (marked "TODO(L54): provisional" in the SDK), whose short-circuit answer the runner
# sends unsieved (a 2025-11-25 `CreateTaskResult` for `tools/call`, which the sieve would reject as a
# `CallToolResult`); a 2026 `resultType` outside `CORE_RESULT_TYPES` ("task") passing as the extension's own
# shape; `ServerRequestContext` as a dataclass with `session` and `meta` (a job's context is a copy without the
# request's progress token); `ServerSession.send_notification` on the session's own channel (progress and
# status of a task whose request was answered); `require_client_extension` for the -32021 gate.


def check_tasks() -> list[str]:
    """What of the above the installed SDK no longer provides, one line each (empty: all present)."""
    import dataclasses

    from mcp.server.context import ServerRequestContext
    from mcp.server.mcpserver import MCPServer
    from mcp.server.session import ServerSession
    from mcp_types import CORE_RESULT_TYPES

    problems: list[str] = []
    if not isinstance(getattr(MCPServer("compat"), "middleware", None), list):
        problems.append(f"MCPServer.middleware is no longer a list ({installed('mcp')})")
    if "task" in CORE_RESULT_TYPES:
        problems.append(f"resultType 'task' is now a core shape the runner sieves ({installed('mcp')})")
    is_dataclass = dataclasses.is_dataclass(ServerRequestContext)
    names = {f.name for f in dataclasses.fields(ServerRequestContext)} if is_dataclass else set()
    if not {"session", "meta"} <= names:
        problems.append(f"ServerRequestContext is no longer a dataclass with session and meta ({installed('mcp')})")
    if not callable(getattr(ServerSession, "send_notification", None)):
        problems.append(f"ServerSession.send_notification is gone ({installed('mcp')})")
    try:
        from mcp.server.mcpserver.server import require_client_extension  # noqa: F401
    except ImportError:
        problems.append(f"mcp.server.mcpserver.server.require_client_extension is gone ({installed('mcp')})")
    return problems
