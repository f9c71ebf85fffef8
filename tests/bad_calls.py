"""Helpers for the tests of bad input (`test_bad_input*.py`): the server they call, a client for one bad call
that checks afterwards that nothing reached the upstream or was dumped and that the server still serves, and a
transport that sends what the SDK's client never does (JSON's bare NaN and Infinity)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client._memory import InMemoryTransport
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from tests.clients import make_dump, mcp_server, text_of
from harness.upstream import Reply, Upstream

CAP = 4096
DEADLINE = 600


def limited_server(provider: Any, store: DumpStore, **kwargs: Any) -> MCPServer:
    """The server under test, with limits to break (`openai/*` models, CAP tokens, DEADLINE seconds) and one dump
    already recorded, so listings and counts have something to lose."""
    store.write(make_dump(0))
    limits = Limits(allowed_models=["openai/*"], max_tokens=CAP, deadline_s=DEADLINE)
    return mcp_server(provider, store, limits=limits, **kwargs)


NAN, INF = "<NaN>", "<Infinity>"
"""Strings the wire transport writes as JSON's bare `NaN` and `Infinity` (`-Infinity` for "<-Infinity>"): a client
may send them, and the stdio transport parses them to floats, but the SDK's client writes a float NaN as null."""


class _Wire:
    """A client's write stream that sends each message as the JSON text a client writes, read back as the stdio
    transport reads a line; the NAN/INF strings become bare NaN and Infinity on the way."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        text = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        for bare in ("NaN", "Infinity", "-Infinity"):
            text = text.replace(f'"<{bare}>"', bare)
        message = types.jsonrpc_message_adapter.validate_json(text, by_name=False)
        await self._inner.send(SessionMessage(message, item.metadata))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Wire:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def _wire(server: MCPServer) -> AsyncIterator[tuple[Any, _Wire]]:
    async with InMemoryTransport(server, raise_exceptions=True) as (read, write):
        yield read, _Wire(write)


@asynccontextmanager
async def checked(
    server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, *, wire: bool = False
) -> AsyncIterator[Client]:
    """A client for one bad call (over the wire transport, when told); afterwards: nothing sent, nothing dumped,
    and a normal call works."""
    before = store.count()
    async with Client(_wire(server) if wire else server, raise_exceptions=True, mode=mode) as c:
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
