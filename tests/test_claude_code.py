"""What a real agent host hands its model: Claude Code (`claude -p`, its own binary) driving `hive-mcp` over
stdio, its model a scripted Anthropic-compatible server on loopback that calls the tools and records the
tool results Claude Code sends back.

Claude Code hands the model the JSON of `structuredContent` (and a resource link as a line of text), not
the text block: the lean result means the model reads the answer and what it acts on, not bookkeeping;
a paged answer says `truncated` and where the rest is, and `read_result` brings the next part.

Runs when a `claude` binary is found (HIVE_TEST_CLAUDE, else PATH); npm's `@anthropic-ai/claude-code`
ships it (the platform package's `claude`). Skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.processes import child_env
from harness.shapes import anthropic_stream, anthropic_tool_use
from harness.upstream import RecordedRequest, Reply, Upstream
from tests.conftest import MODEL
from tests.paged_answers import long_answer

CLAUDE = os.environ.get("HIVE_TEST_CLAUDE") or shutil.which("claude")
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="no claude binary (set HIVE_TEST_CLAUDE or put claude on PATH)")

RUN_S = 240.0
LEAN = {"content", "model", "stop_reason", "tool_calls", "conversation_id"}


class Agent:
    """The scripted model of Claude Code: calls `complete`; when the answer came back truncated, calls
    `read_result` for part 2; then ends. Records every tool result it was handed, as Claude Code sent it."""

    def __init__(self) -> None:
        self.results: list[list[str]] = []

    def reply(self, request: RecordedRequest) -> Reply | None:
        body = request.body if isinstance(request.body, dict) else {}
        if "count_tokens" in request.path:
            return Reply("json", body={"input_tokens": len(json.dumps(body)) // 4})
        if not body.get("stream"):
            return Reply.anthropic("ok")
        if "mcp__hive__complete" not in {t.get("name") for t in body.get("tools", [])}:
            return anthropic_stream("ok")  # Claude Code's side requests (a title, a summary)
        handed = [
            block for m in body.get("messages", []) if m.get("role") == "user" and isinstance(m.get("content"), list)
            for block in m["content"] if isinstance(block, dict) and block.get("type") == "tool_result"
        ]  # fmt: skip
        if not handed:
            return anthropic_tool_use("toolu_1", "mcp__hive__complete", {"prompt": "answer", "max_tokens": 60000})
        self.results = [texts(block.get("content")) for block in handed]
        first = structured(self.results[0])
        if len(handed) == 1 and first.get("truncated"):
            rid = first["result_uri"].rsplit("/", 1)[1]
            return anthropic_tool_use("toolu_2", "mcp__hive__read_result", {"id": rid, "part": 2})
        return anthropic_stream("done")


def texts(content: Any) -> list[str]:
    """A tool result's content as its texts (Claude Code sends a string, or a list of text blocks)."""
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]


def structured(handed: list[str]) -> dict[str, Any]:
    """The JSON object among what the model was handed for one tool call."""
    [found] = [json.loads(t) for t in handed if t.startswith("{")]
    return found


@pytest.fixture
def agent() -> Iterator[Agent]:
    yield Agent()


def drive(agent: Agent, answer: str, tmp_path: Path, **settings: str) -> None:
    """One `claude -p` run against hive-mcp (stdio) whose model answers `answer`."""
    claude_model = Upstream(reply_for=agent.reply)
    with Upstream(Reply.text(answer)) as hive_model, claude_model:
        server_env = {
            "HIVE_MCP_API_BASE": hive_model.base_url, "HIVE_MCP_API_KEY": "sk-test-hive", "HIVE_MCP_MODEL": MODEL,
            "HIVE_HOME": str(tmp_path / "hive"), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_OFFLINE_MODE": "true", **settings,
        }  # fmt: skip
        config = {"mcpServers": {"hive": {"command": sys.executable, "args": ["-m", "hive_mcp"], "env": server_env}}}
        (tmp_path / "mcp.json").write_text(json.dumps(config))
        (tmp_path / "home").mkdir()
        env = child_env(
            HOME=str(tmp_path / "home"), ANTHROPIC_BASE_URL=claude_model.anthropic_base,
            ANTHROPIC_API_KEY="sk-ant-test-0000", ENABLE_TOOL_SEARCH="false",  # every MCP tool in the request
            DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        )  # fmt: skip
        run = subprocess.run(
            [str(CLAUDE), "-p", "Ask hive.", "--mcp-config", str(tmp_path / "mcp.json"), "--strict-mcp-config",
             "--allowedTools", "mcp__hive__complete", "mcp__hive__read_result", "--output-format", "json"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_S,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["result"] == "done", run.stdout[-2000:]


def test_claude_code_hands_its_model_the_answer_not_bookkeeping(agent: Agent, tmp_path: Path) -> None:
    drive(agent, "Paris is the capital of France.", tmp_path)
    [handed] = agent.results
    result = structured(handed)
    assert set(result) == LEAN and result["content"] == "Paris is the capital of France."
    assert not {"input_tokens", "cost_usd", "attempts", "dump_uri"} & set(result)


def test_claude_code_reads_a_paged_answer_through_read_result(agent: Agent, tmp_path: Path) -> None:
    answer = long_answer()
    drive(agent, answer, tmp_path, HIVE_MCP_RESULT_INLINE_TOKENS="500")
    first, second = agent.results
    result = structured(first)
    assert result["truncated"] is True and result["parts"] > 2 and answer.startswith(result["content"])
    assert any(result["result_uri"] in t for t in first if not t.startswith("{"))  # the resource link, as text
    part2 = second[0]
    assert answer[len(result["content"]) :].startswith(part2) and len(part2) > 100
    assert second[1] == f"[part 2 of {result['parts']}; next: part 3]"
