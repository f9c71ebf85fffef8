"""`complete` as a task through clients nobody here wrote, against `python -m hive_mcp` over streamable HTTP with
two callers' tokens: the TypeScript SDK 1.x client's experimental tasks API (2025-11-25) and the official tasks
extension client, ext-tasks on the TypeScript client 2.x (2026-07-28). Then the Python SDK's client, as bob,
asks for alice's task and is told there is none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from harness.upstream import Reply, Upstream
from hive_mcp.tasks.policy import LONG_INPUT_CHARS
from tests.node_tools import package, run_script
from tests.servers import HttpServer, Session, authed_target, served_http
from harness.task_requests import raw

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Upstream]]:
    tokens = f"alice:{ALICE},bob:{BOB}"
    with served_http(tmp_path_factory.mktemp("task-clients"), "tasks", HIVE_MCP_AUTH_TOKEN=tokens) as both:
        yield both


def drive(script: str, server: HttpServer, tool: str, arguments: dict[str, Any], token: str) -> dict[str, Any]:
    package("@modelcontextprotocol/sdk")
    package("@modelcontextprotocol/client")
    package("@modelcontextprotocol/ext-tasks")
    return run_script(script, server.url, tool, token, stdin=arguments)


def test_typescript_sdk_experimental_tasks(served: tuple[HttpServer, Upstream]) -> None:
    server, upstream = served
    upstream.script(Reply.text("answer for the SDK client", delay=0.3))
    seen = drive("sdk_tasks.mjs", server, "complete", {"prompt": "hi"}, ALICE)
    assert seen["capability"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert seen["taskSupport"]["complete"] == "optional" and seen["taskSupport"]["list_models"] is None
    kinds = [m["type"] for m in seen["messages"]]
    assert kinds[0] == "taskCreated" and kinds[-1] == "result"
    final = seen["messages"][-1]["result"]
    assert final["content"][0]["text"] == "answer for the SDK client" and not final["isError"]
    assert final["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": seen["taskId"]}
    assert "resultType" not in final  # a 2026 field, not on the 2025-11-25 wire
    assert seen["got"]["status"] == "completed" and seen["taskId"] in seen["listed"]
    assert {"taskId": seen["taskId"], "status": "completed"} in seen["notified"]  # notifications/tasks/status
    bob = Session(authed_target(server, BOB), "legacy")
    try:
        with pytest.raises(MCPError) as refused:
            bob.run(lambda c: raw(c, "tasks/get", {"taskId": seen["taskId"]}))
        assert refused.value.code == -32602
        assert bob.run(lambda c: raw(c, "tasks/list"))["tasks"] == []
    finally:
        bob.close()


def test_ext_tasks_client_on_the_2026_extension(served: tuple[HttpServer, Upstream]) -> None:
    server, upstream = served
    upstream.script(Reply.text("answer for ext-tasks", delay=0.3))
    seen = drive("ext_tasks.mjs", server, "complete", {"prompt": "x" * LONG_INPUT_CHARS}, ALICE)
    assert seen["era"] == "modern" and seen["advertised"] == {}
    assert seen["kind"] == "task" and seen["outcome"] == "completed"
    assert seen["result"]["content"][0]["text"] == "answer for ext-tasks"
