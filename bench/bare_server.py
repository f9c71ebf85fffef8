"""The floors for hive-mcp's tools: a bare SDK `MCPServer` whose tools make the same litellm calls.

No conversations, no ledger, no catalogue, no pacing: what the SDK and litellm cost on their own.
- `complete`: the overhead section's ratio (hive-mcp's `complete` over stdio against this) is hive-mcp's
  own share.
- `stream_complete`: litellm's stream, each delta sent as a progress notification as it arrives; the
  concurrency section runs it over streamable HTTP beside hive-mcp's, so what the SDK's own progress path
  costs per chunk is in the same run as the server's target.

Run as `python -m bench.bare_server` (stdio) or `python -m bench.bare_server --transport http --port N`
(streamable HTTP, with `/healthz`), with HIVE_MCP_MODEL, HIVE_MCP_API_BASE and HIVE_MCP_API_KEY set, as for
the real server.
"""

from __future__ import annotations

import os
import sys

import litellm
from mcp.server.mcpserver import Context, MCPServer

from bench.least_server import deltas, upstream

server = MCPServer("bare")


@server.tool()
async def complete(prompt: str) -> dict[str, str]:
    response = await litellm.acompletion(
        model=os.environ["HIVE_MCP_MODEL"], messages=[{"role": "user", "content": prompt}], **upstream()
    )
    return {"content": response.choices[0].message.content or ""}


@server.tool()
async def stream_complete(prompt: str, ctx: Context, model: str | None = None) -> dict[str, str]:
    parts: list[str] = []
    async for text in deltas(prompt, model):
        parts.append(text)
        await ctx.report_progress(len(parts), None, text)
    return {"content": "".join(parts)}


def serve_http(port: int) -> None:
    import uvicorn
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = server.streamable_http_app()
    app.router.routes.append(Route("/healthz", lambda _request: PlainTextResponse("ok")))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if "--port" in sys.argv:
        serve_http(int(sys.argv[sys.argv.index("--port") + 1]))
    else:
        server.run("stdio")
