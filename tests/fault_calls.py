"""What the fault tests share: one tool call on a fresh in-process client, the progress it reports, and how
long anything that should happen promptly may take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

MODE = "auto"  # the 2026-07-28 era; the many-clients test mixes in legacy sessions
WAIT = 10.0  # upper bound for anything that should happen promptly; never slept


class Progress:
    """Collects a call's progress notifications."""

    def __init__(self, on_first_text: Callable[[], None] | None = None) -> None:
        self.items: list[tuple[float, str | None]] = []
        self._on_first_text = on_first_text

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if message and self._on_first_text is not None and not self.text:
            self._on_first_text()
        self.items.append((progress, message))

    @property
    def text(self) -> str:
        return "".join(m for _, m in self.items if m)


async def call(
    server: MCPServer, tool: str, arguments: dict[str, Any], progress: Progress | None = None
) -> types.CallToolResult:
    """One tool call on a fresh in-process client; stream_complete always asks for progress."""
    if tool == "stream_complete" and progress is None:
        progress = Progress()
    async with Client(server, raise_exceptions=True, mode=MODE) as client:
        return await client.call_tool(tool, arguments, progress_callback=progress)

