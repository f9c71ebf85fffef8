"""The MCP conformance suite's task fixtures on hive-mcp's own task engine, served over streamable HTTP.

`python -m tests.tasks_conformance_server PORT [DB]` serves `http://127.0.0.1:PORT/mcp` until killed. The tools
are the suite's (`npx @modelcontextprotocol/conformance list`; each tasks scenario prints what it needs):
`greet` (never a task), `slow_compute` (a task unless `seconds` is 0), `failing_job` (a required task whose
tool reports an error), `protocol_error_job` (a task that fails with a protocol error), `confirm_delete` and
`multi_input` (tasks whose tools ask the client for one and for two answers) and `test_tool_with_task` (asks
for a name directly, then runs as a task with the answer). The engine, the
extension and the `tasks/*` handlers are the ones `complete` uses (`hive_mcp.tasks`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
import uvicorn
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ElicitRequest, ElicitRequestFormParams, InputRequiredResult

from hive_mcp.tasks import TaskEngine
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from hive_mcp.tasks.wire import TaskTool, TasksExtension, install_tasks

async def _slow(params: Any) -> bool:
    return bool((params.arguments or {}).get("seconds", 1))


async def _answered(params: Any) -> bool:
    return params.input_responses is not None


TOOLS = {
    "slow_compute": TaskTool("optional", _slow),
    "failing_job": TaskTool("required"),
    "protocol_error_job": TaskTool("optional"),
    "confirm_delete": TaskTool("optional"),
    "multi_input": TaskTool("optional"),
    # Input is gathered before the task (the first round answers directly), then the call becomes one.
    "test_tool_with_task": TaskTool("required", _answered),
}

ONE_CALLER = lambda _ctx: "local"  # noqa: E731 - the suite is one caller


def _ask(message: str, field: str) -> ElicitRequest:
    kind = {"type": "boolean"} if field == "confirm" else {"type": "string"}
    schema = {"type": "object", "properties": {field: kind}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _content(answer: Any) -> dict[str, Any]:
    content = answer.get("content") if isinstance(answer, dict) else getattr(answer, "content", None)
    return content if isinstance(content, dict) else {}


def _accepted(answer: Any) -> bool:
    action = answer.get("action") if isinstance(answer, dict) else getattr(answer, "action", None)
    return action == "accept" and bool(_content(answer).get("confirm", True))


def build(db: Path) -> MCPServer:
    extension = TasksExtension(TaskEngine(SQLiteTaskStore(db)), TOOLS, ONE_CALLER)
    server = MCPServer("hive-mcp-tasks-conformance", extensions=[extension])

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
        raise ToolError("failing_job always fails")

    @server.tool()
    async def protocol_error_job() -> str:
        """Fails with a protocol error."""
        raise MCPError(code=INTERNAL_ERROR, message="protocol_error_job: internal failure")

    @server.tool()
    async def confirm_delete(ctx: Context, filename: str) -> Any:
        """Deletes `filename` once the client confirms."""
        answer = (ctx.input_responses or {}).get("confirm")
        if answer is None:
            return InputRequiredResult(input_requests={"confirm": _ask(f"Delete {filename}?", "confirm")})
        return f"deleted {filename}" if _accepted(answer) else f"kept {filename}"

    @server.tool()
    async def multi_input(ctx: Context) -> Any:
        """Asks two questions at once."""
        answers = ctx.input_responses or {}
        if not {"first", "second"} <= answers.keys():
            asked = {"first": _ask("Name?", "name"), "second": _ask("Sure?", "confirm")}
            return InputRequiredResult(input_requests=asked)
        return "both answered"

    @server.tool()
    async def test_tool_with_task(ctx: Context) -> Any:
        """Asks for a user name, then answers with it."""
        answer = next(iter((ctx.input_responses or {}).values()), None)
        if answer is None:
            return InputRequiredResult(input_requests={"user_name": _ask("Your name?", "name")})
        return f"Hello, {_content(answer).get('name', 'stranger')}!"

    install_tasks(server, extension)
    return server


def main() -> None:
    port = int(sys.argv[1])
    db = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / "tasks.sqlite3"
    app = build(db).streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
