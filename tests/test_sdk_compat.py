"""Each private or provisional SDK/anyio API hive-mcp leans on (hive_mcp/sdk_compat.py) still works.

When an upgrade moves one, the failure names the installed version and the
attribute, so the fix starts here rather than in a request handler.
"""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer

from hive_mcp.sdk_compat import check_tasks, installed, lowlevel_server, run_sync_soon, session_connection
from tests.clients import WAIT

# MCP server

MCP = installed("mcp")
ANYIO = installed("anyio")


def test_mcpserver_has_its_lowlevel_server() -> None:
    server = MCPServer("compat")
    assert isinstance(getattr(server, "_lowlevel_server", None), Server), (
        f"{MCP}: MCPServer._lowlevel_server is gone or no longer a low-level Server; "
        "the paginated resource handlers are registered on it"
    )
    assert lowlevel_server(server) is server._lowlevel_server  # pyright: ignore[reportPrivateUsage]


async def test_a_legacy_session_exposes_its_connection() -> None:
    server = MCPServer("compat")
    seen: list[object] = []

    @server.tool()
    async def probe(ctx: Context) -> str:
        session = ctx.request_context.session
        seen.append(getattr(session, "_connection", None))
        conn = session_connection(session)
        return "ok" if conn is not None and conn.has_standalone_channel else "none"

    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("probe", {})
    assert isinstance(seen[0], Connection), (
        f"{MCP}: a request's session no longer holds its Connection as `_connection` "
        f"(found {type(seen[0]).__name__}); legacy sessions would hear no change notifications"
    )
    assert result.structured_content == {"result": "ok"}, result


async def test_run_sync_soon_reaches_the_loop_from_another_thread() -> None:
    token = anyio.lowlevel.current_token()
    assert hasattr(token, "backend_class") and hasattr(token.backend_class, "run_sync_soon"), (
        f"{ANYIO}: EventLoopToken.backend_class.run_sync_soon is gone; "
        "the dump store's writer thread can no longer wake the event loop"
    )
    ran = anyio.Event()
    called_on: list[int] = []
    loop_thread = threading.get_ident()

    def on_loop() -> None:
        called_on.append(threading.get_ident())
        ran.set()

    writer = threading.Thread(target=run_sync_soon, args=(token, on_loop))
    writer.start()
    with anyio.fail_after(WAIT):
        await ran.wait()
    writer.join()
    assert called_on == [loop_thread], f"{ANYIO}: run_sync_soon ran the callback off the event loop's thread"


def test_what_the_tasks_wire_leans_on_is_there() -> None:
    assert check_tasks() == [], f"{MCP}: see hive_mcp/sdk_compat.py, Tasks"
