"""What the fault tests share: one tool call on a fresh in-process client (its progress collected by
`tests.clients.Progress`), and how long anything that should happen promptly may take."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

from tests.clients import Progress

MODE = "auto"  # the 2026-07-28 era; the many-clients test mixes in legacy sessions
WAIT = 10.0  # upper bound for anything that should happen promptly; never slept


async def call(
    server: MCPServer, tool: str, arguments: dict[str, Any], progress: Progress | None = None
) -> types.CallToolResult:
    """One tool call on a fresh in-process client; stream_complete always asks for progress."""
    if tool == "stream_complete" and progress is None:
        progress = Progress()
    async with Client(server, raise_exceptions=True, mode=MODE) as client:
        return await client.call_tool(tool, arguments, progress_callback=progress)

