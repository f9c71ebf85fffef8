"""Helpers for the tests of bad input (`test_bad_input*.py`): the server they call, and a client for one bad call
that checks afterwards that nothing reached the upstream or was dumped, and that the server still serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from tests.clients import connect, make_dump, mcp_server, text_of
from harness.upstream import Reply, Upstream

CAP = 4096
DEADLINE = 600


def limited_server(provider: Any, store: DumpStore, **kwargs: Any) -> MCPServer:
    """The server under test, with limits to break (`openai/*` models, CAP tokens, DEADLINE seconds) and one dump
    already recorded, so listings and counts have something to lose."""
    store.write(make_dump(0))
    limits = Limits(allowed_models=["openai/*"], max_tokens=CAP, deadline_s=DEADLINE)
    return mcp_server(provider, store, limits=limits, **kwargs)


@asynccontextmanager
async def checked(server: MCPServer, upstream: Upstream, store: DumpStore, mode: str) -> AsyncIterator[Client]:
    """A client for one bad call; afterwards: nothing sent, nothing dumped, and a normal call works."""
    before = store.count()
    async with connect(server, mode) as c:
        yield c
        assert upstream.requests == []
        assert store.count() == before
        upstream.script(Reply.text("still serving"))
        after = await c.call_tool("complete", {"prompt": "are you there?"})
        assert not after.is_error, text_of(after)
        assert text_of(after) == "still serving"
        assert len(upstream.chat_requests()) == 1


def prompt_and(**arguments: Any) -> dict[str, Any]:
    return {"prompt": "x", **arguments}


def tool_with(parameters: Any) -> dict[str, Any]:
    return prompt_and(tools=[{"name": "weather", "parameters": parameters}])
