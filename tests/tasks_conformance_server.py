"""The MCP conformance suite's task fixtures on hive-mcp's own task engine, served over streamable HTTP.

`python -m tests.tasks_conformance_server PORT [DB]` serves `http://127.0.0.1:PORT/mcp` until killed. The tools
are the suite's (`npx @modelcontextprotocol/conformance list`; each tasks scenario prints what it needs):
`greet` (never a task), `slow_compute` (a task unless `seconds` is 0), `failing_job` (a required task whose
tool reports an error) and `protocol_error_job` (a task that fails with a protocol error). The engine, the
extension and the `tasks/*` handlers are the ones `complete` uses (`hive_mcp.tasks`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from hive_mcp.tasks import TaskEngine
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from hive_mcp.tasks.wire import TaskTool, TasksExtension, install_tasks

TOOLS = {
    "slow_compute": TaskTool("optional", lambda args: bool(args.get("seconds", 1))),
    "failing_job": TaskTool("required"),
    "protocol_error_job": TaskTool("optional"),
}

ONE_CALLER = lambda _ctx: "local"  # noqa: E731 - the suite is one caller


def build(db: Path) -> MCPServer:
    engine = TaskEngine(SQLiteTaskStore(db))
    server = MCPServer("hive-mcp-tasks-conformance", extensions=[TasksExtension(engine, TOOLS, ONE_CALLER)])

    @server.tool()
    def greet(name: str) -> str:
        """Greets by name."""
        return f"Hello, {name}!"

    @server.tool()
    async def slow_compute(seconds: float = 1, label: str = "") -> str:
        """Sleeps `seconds`, then answers."""
        await anyio.sleep(seconds)
        return f"computed {label} after {seconds}s"

    @server.tool()
    async def failing_job() -> str:
        """Reports a tool error after about a second."""
        await anyio.sleep(1)
        raise ValueError("failing_job always fails")

    @server.tool()
    async def protocol_error_job() -> str:
        """Fails with a protocol error."""
        raise MCPError(code=INTERNAL_ERROR, message="protocol_error_job: internal failure")

    install_tasks(server, engine, TOOLS, ONE_CALLER)
    return server


def main() -> None:
    port = int(sys.argv[1])
    db = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / "tasks.sqlite3"
    app = build(db).streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
