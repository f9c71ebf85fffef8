"""What the TypeScript SDK's client (1.x, the one most hosts are built on) makes of `complete`'s results, against
`python -m hive_mcp` over streamable HTTP: it validates structured content against the tool's output schema, so
a failed call's result must conform to that schema too, or the host sees a protocol error instead of the
failure's one line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.upstream import Reply, Upstream
from tests.node_tools import package, run_script
from tests.servers import HttpServer, served_http


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Upstream]]:
    with served_http(tmp_path_factory.mktemp("sdk-client"), "sdk-client") as both:
        yield both


def call(server: HttpServer, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    package("@modelcontextprotocol/sdk")
    return run_script("sdk_call.mjs", server.url, tool, stdin=arguments)


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
