"""Trace context and overhead at the HTTP layer, in process: hive's real server over the SDK's streamable HTTP app,
driven by raw JSON-RPC POSTs (the point is what the HTTP request carries), spans in the SDK's in-memory exporter;
the provider goes through litellm's real HTTP path to the scripted upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from hive_mcp.observe.overhead import OVERHEAD_HEADER, OVERHEAD_META_KEY, CallClock, OverheadHeader, tell
from harness.upstream import Reply
from tests.clients import mcp_server
from tests.otel import memory_spans, named

HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OPEN = TransportSecuritySettings(enable_dns_rebinding_protection=False)


@asynccontextmanager
async def http_to(server: MCPServer, wrap: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    app = server.streamable_http_app(stateless_http=True, transport_security=OPEN)
    async with server.session_manager.run():
        transport = httpx.ASGITransport(app=wrap(app) if wrap else app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
            yield http


async def call(http: httpx.AsyncClient, tool: str, arguments: dict[str, Any], *, meta: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> tuple[httpx.Response, dict[str, Any]]:  # fmt: skip
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    reply = await http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
        headers={"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25",
                 **(headers or {})},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    data = next(line[5:] for line in reply.text.splitlines() if line.startswith("data:"))
    return reply, json.loads(data)["result"]


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-b7ad6b7169203331-01"


async def test_the_http_traceparent_header_is_continued_down_to_the_provider(provider, store, upstream):
    spans = memory_spans()
    upstream.script(Reply.text("Paris"))
    async with http_to(mcp_server(provider, store)) as http:
        _, result = await call(http, "complete", {"prompt": "capital of France?"},
                               headers={"traceparent": traceparent(HEADER_TRACE)})  # fmt: skip
    assert not result.get("isError"), result
    finished = spans.get_finished_spans()
    (server_span,) = named(finished, "tools/call complete")
    (attempt,) = named(finished, "chat gpt-4o-mini")
    assert format(server_span.context.trace_id, "032x") == HEADER_TRACE
    assert attempt.context.trace_id == server_span.context.trace_id


async def test_meta_traceparent_wins_over_the_header(provider, store, upstream):
    spans = memory_spans()
    upstream.script(Reply.text("Paris"))
    async with http_to(mcp_server(provider, store)) as http:
        await call(http, "complete", {"prompt": "capital of France?"}, meta={"traceparent": traceparent(META_TRACE)},
                   headers={"traceparent": traceparent(HEADER_TRACE)})  # fmt: skip
    (attempt,) = named(spans.get_finished_spans(), "chat gpt-4o-mini")
    assert format(attempt.context.trace_id, "032x") == META_TRACE


def overhead_server() -> MCPServer:
    """A tool that tells its overhead as the call chain does: its wall time minus what it waited on (none)."""
    server = MCPServer("overhead")

    @server.tool()
    async def answer(ctx: Context) -> dict[str, Any]:
        clock = CallClock()
        told = tell(ctx.request_context.request, clock.overhead_s(0.0))
        return {"meta": told}

    @server.tool()
    async def silent() -> str:
        return "nothing told"

    return server


async def test_the_overhead_a_call_tells_is_the_http_header_too():
    async with http_to(overhead_server(), OverheadHeader) as http:
        reply, result = await call(http, "answer", {})
        told = result["structuredContent"]["meta"][OVERHEAD_META_KEY]
        assert told >= 0
        assert float(reply.headers[OVERHEAD_HEADER.decode()]) == pytest.approx(told)
        reply, _ = await call(http, "silent", {})
        assert OVERHEAD_HEADER.decode() not in reply.headers
