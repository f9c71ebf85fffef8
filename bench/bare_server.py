"""The floor for `complete` over stdio: a bare SDK `MCPServer` with one tool making the same litellm call.

No conversations, no ledger, no catalogue: what the SDK and litellm cost on their own, so the overhead
section's ratio (hive-mcp's `complete` over this) is hive-mcp's own share. Run as `python -m bench.bare_server`
with HIVE_MCP_MODEL, HIVE_MCP_API_BASE and HIVE_MCP_API_KEY set, as for the real server.
"""

from __future__ import annotations

import os

import litellm
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
async def complete(prompt: str) -> dict[str, str]:
    response = await litellm.acompletion(
        model=os.environ["HIVE_MCP_MODEL"],
        api_base=os.environ["HIVE_MCP_API_BASE"],
        api_key=os.environ["HIVE_MCP_API_KEY"],
        messages=[{"role": "user", "content": prompt}],
    )
    return {"content": response.choices[0].message.content or ""}


if __name__ == "__main__":
    server.run("stdio")
