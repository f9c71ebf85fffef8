"""Every use of a private or provisional API of the MCP SDK and its dependencies, in one place.

Each entry names what it reaches for and why there is no public way. Each has a
test (tests/test_sdk_compat_*.py) that fails with a message naming the installed
version when the attribute moves, so an upgrade breaks there, not in production.
`check_http_and_stdio()` runs the same checks and returns the problems found.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = [
    "check_http_and_stdio",
    "end_all_event_streams",
    "installed",
    "keep_event_streams_at_shutdown",
    "lowlevel_server",
]


def installed(distribution: str) -> str:
    """`name version` of an installed distribution, for the messages below."""
    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} (not installed)"


# HTTP and stdio
# ---------------------------------------------------------------------------
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


# `MCPServer._lowlevel_server`: stdio serving with our own ends on stdin and
# stdout (`hive_mcp.stdio`) needs the low-level server's `run(read, write,
# options)`, which `MCPServer.run_stdio_async` calls the same way; MCPServer
# exposes no public accessor for it.


def lowlevel_server(server: Any) -> Any:
    """The low-level `mcp.server.lowlevel.Server` inside an `MCPServer`."""
    return server._lowlevel_server


def check_http_and_stdio(server: Any = None) -> list[str]:
    """What of the above the installed packages no longer provide, one line each (empty: all present)."""
    problems: list[str] = []
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
