"""Every use of a private or provisional SDK or anyio API, each behind one function.

When an upgrade moves one of these, the failure is here and in
tests/test_sdk_compat.py, which names the installed version, not somewhere deep
in a request handler.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from anyio.lowlevel import EventLoopToken
from mcp.server.connection import Connection
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer


# ---------------------------------------------------------------------------
# MCP server
# ---------------------------------------------------------------------------


def installed(package: str) -> str:
    """`package`'s installed version, for messages that must say which release changed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def lowlevel_server(server: MCPServer) -> Server[Any]:
    """The low-level `Server` under an `MCPServer`, where paginated resource handlers are registered.

    `MCPServer` returns whole lists with no cursor; the SDK's own Client reaches the
    low-level server through this same attribute.
    """
    low = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    if not isinstance(low, Server):
        raise TypeError(f"MCPServer._lowlevel_server is not a low-level Server in mcp {installed('mcp')}")
    return low


def session_connection(session: object) -> Connection | None:
    """The `Connection` behind a request's session proxy, or None when it has none.

    The SDK gives handlers no public handle on their connection; legacy sessions
    need it to be sent change notifications on their standalone channel.
    """
    conn = getattr(session, "_connection", None)
    return conn if isinstance(conn, Connection) else None


def run_sync_soon(token: EventLoopToken, fn: Callable[[], None]) -> None:
    """Schedule `fn` on the loop `token` names, from any thread, without waiting for it.

    anyio's public `from_thread.run_sync(token=...)` blocks until the call ran; a
    writer thread must not wait on a loop that may be shutting down.
    """
    token.backend_class.run_sync_soon(fn, (), token.native_token)  # pyright: ignore[reportPrivateUsage]
