"""What the TypeScript SDK's client (1.x, the one most hosts are built on) makes of `complete`'s results, against
`python -m hive_mcp` over streamable HTTP: it validates structured content against the tool's output schema, so
a failed call's result must conform to that schema too, or the host sees a protocol error instead of the
failure's one line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from harness.upstream import Reply, Upstream
from tests.node_tools import NODE_DIR, node_binary, package
from tests.servers import HttpServer, server_env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Upstream]]:
    workdir = tmp_path_factory.mktemp("sdk-client")
    with Upstream() as upstream:
        env = server_env(upstream, workdir / "dumps", api_key=True) | {"HIVE_HOME": str(workdir / "home")}
        server = HttpServer("http", env, workdir, "sdk-client")
        try:
            server.wait_ready()
            yield server, upstream
        finally:
            assert server.terminate() == 0, server.stderr()


def call(server: HttpServer, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    package("@modelcontextprotocol/sdk")
    run = subprocess.run(
        [node_binary(), str(NODE_DIR / "sdk_call.mjs"), server.url, tool], input=json.dumps(arguments),
        capture_output=True, text=True, timeout=120, cwd=NODE_DIR,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
def test_a_failed_call_reaches_the_typescript_client_as_its_one_line_and_category(
    served: tuple[HttpServer, Upstream], tool: str
) -> None:
    server, upstream = served
    upstream.script(Reply.error(401, "Incorrect API key provided", code="invalid_api_key"))
    seen = call(server, tool, {"prompt": "hi", "max_retries": 0})
    assert "threw" not in seen, seen["threw"]  # not "Structured content does not match the tool's output schema"
    result = seen["result"]
    [block] = result["content"]
    assert result["isError"] is True and block["text"].startswith("auth error from model ")
    s = result["structuredContent"]
    assert s["error"] == "auth" and s["content"] == block["text"] and s["stop_reason"] == "error"
    assert s["tool_calls"] == [] and s["model"]


def test_an_answer_reaches_the_typescript_client_whole(served: tuple[HttpServer, Upstream]) -> None:
    server, upstream = served
    upstream.script(Reply.text("Paris."))
    seen = call(server, "complete", {"prompt": "Capital of France?"})
    assert "threw" not in seen, seen["threw"]
    assert seen["result"]["structuredContent"]["content"] == "Paris." and not seen["result"].get("isError")
