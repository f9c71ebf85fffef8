"""Replies as the provider meant them, seen by an MCP client: refusals, content filters,
reasoning, and a key of any shape that never reaches the client."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore

from hive_mcp.calls.stream import TAGS
from hive_mcp.provider import LiteLLMProvider
from tests.clients import MODEL, connect, mcp_server, Progress, text_of
from tests.conftest import FAST_RETRY
from harness.shapes import azure_filtered_reply, reasoning_reply, refusal_reply, streamed_reasoning
from harness.upstream import Reply, Upstream


@pytest.fixture
def server(provider: Any, store: DumpStore) -> MCPServer:
    return mcp_server(provider, store)


async def call(server: MCPServer, mode: str, tool: str, args: dict[str, Any], progress: Progress | None = None):
    async with connect(server, mode) as c:
        return await c.call_tool(tool, args, progress_callback=progress)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_refusal_is_a_result_not_an_error(server: MCPServer, upstream: Upstream, store: DumpStore,
                                                   mode: str, tool: str) -> None:
    refusal = "I'm sorry, I can't help with that."
    upstream.script(refusal_reply(refusal) if tool == "complete" else Reply.stream([refusal]))
    result = await call(server, mode, tool, {"prompt": "do the bad thing"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    if tool == "complete":
        assert result.structured_content["stop_reason"] == "refusal"
    assert result.structured_content["content"] == refusal == text_of(result)
    assert len(upstream.chat_requests()) == 1 and store.count() == 0  # never retried, nothing dumped


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_content_filter_is_one_line_content_policy_error(server: MCPServer, upstream: Upstream,
                                                                 store: DumpStore, mode: str, tool: str) -> None:
    if tool == "complete":  # Azure's shape: the choice has no message at all
        upstream.script(azure_filtered_reply(["hate", "violence"]))
    else:
        upstream.script(Reply.stream(["Once "], finish_reason="content_filter"))
    result = await call(server, mode, tool, {"prompt": "x"})
    assert result.is_error
    text = text_of(result)
    assert text.startswith(f"content_policy error from model {MODEL} after 1 attempt:"), text
    assert "\n" not in text and "Traceback" not in text
    if tool == "complete":
        assert "hate" in text and "violence" in text  # the categories the reply lists
    assert len(upstream.chat_requests()) == 1 and store.count() == 1


async def test_reasoning_is_in_the_result_and_absent_when_there_is_none(
    server: MCPServer, upstream: Upstream, mode: str
) -> None:
    upstream.script(reasoning_reply("42", "Six times seven.", reasoning_tokens=9), Reply.text("plain"))
    thought = await call(server, mode, "complete", {"prompt": "answer"})
    assert thought.structured_content is not None
    assert (thought.structured_content["reasoning"], call_facts(thought)["reasoning_tokens"]) == (
        "Six times seven.", 9,
    )
    plain = await call(server, mode, "complete", {"prompt": "answer"})
    assert plain.structured_content is not None and "reasoning" not in plain.structured_content


@pytest.mark.parametrize("include", [False, True])
async def test_streamed_reasoning_is_relayed_only_when_asked_and_the_answer_still_joins(
    server: MCPServer, upstream: Upstream, mode: str, include: bool
) -> None:
    upstream.script(streamed_reasoning(["Let me ", "think."], ["The ", "answer."]))
    progress = Progress()
    args = {"prompt": "q", "include_reasoning": True} if include else {"prompt": "q"}
    result = await call(server, mode, "stream_complete", args, progress)
    assert result.structured_content is not None
    content = result.structured_content["content"]
    assert content == "The answer." and result.structured_content["reasoning"] == "Let me think."
    messages = [m for _, m in progress.items if m]
    if not include:
        assert "".join(messages) == content  # untagged, exactly the answer: the documented rule
        return
    assert all(m.startswith(tuple(TAGS.values())) for m in messages)
    answer = "".join(m.removeprefix(TAGS["answer"]) for m in messages if m.startswith(TAGS["answer"]))
    reasoning = "".join(m.removeprefix(TAGS["reasoning"]) for m in messages if m.startswith(TAGS["reasoning"]))
    assert (answer, reasoning) == (content, "Let me think.")


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_text_that_is_not_valid_unicode_arrives_mended_and_joined(
    server: MCPServer, upstream: Upstream, mode: str, tool: str
) -> None:
    """An upstream that cuts text by UTF-16 code units (a JavaScript proxy) can send half of an emoji's surrogate
    pair in one chunk and the other half in the next, or a half alone. A split pair arrives as the character it
    spells; a half alone as U+FFFD, the replacement character; the progress joins to the content."""
    if tool == "complete":
        upstream.script(Reply.text("half \ud83d, and \udc00 too"))
        expected = "half \ufffd, and \ufffd too"
    else:
        upstream.script(Reply.stream(["smile \ud83d", "\ude00, half \ud83d", ", low \udc00", " end \ud83d"]))
        expected = "smile \U0001f600, half \ufffd, low \ufffd end \ufffd"
    progress = Progress()
    result = await call(server, mode, tool, {"prompt": "q"}, progress)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert text_of(result) == result.structured_content["content"] == expected
    if tool == "stream_complete":
        assert "".join(m for _, m in progress.items if m) == expected


async def test_a_key_of_no_known_shape_echoed_by_a_401_reaches_no_client_log_or_dump(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    key = "3f2b9c0e1d7a4b6c8e5f0a1b2c3d4e5f"  # an Azure-style 32-hex key: no sk- prefix, no Bearer
    monkeypatch.setenv("OPENAI_API_KEY", key)
    upstream.script(Reply.error(401, f"Incorrect API key provided: {key}. Check it.", code="invalid_api_key"))
    store = DumpStore(tmp_path / "dumps")
    provider = LiteLLMProvider(model=MODEL, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store)
    caplog.set_level(logging.DEBUG)
    result = await call(mcp_server(provider, store), mode, "complete", {"prompt": "hi"})
    assert result.is_error and text_of(result).startswith(f"auth error from model {MODEL}")
    assert upstream.chat_requests()[0].headers.get("authorization") == f"Bearer {key}"  # the key was used
    seen = [text_of(result), caplog.text, *(p.read_text() for p in (tmp_path / "dumps").glob("*.json"))]
    assert store.count() == 1 and not any(key in s for s in seen)
    assert isinstance(result.content[0], types.TextContent)


async def test_a_failed_calls_dump_names_its_caller(server: MCPServer, upstream: Upstream, store: DumpStore) -> None:
    upstream.script(Reply.error(400, "bad request"))
    result = await call(server, "legacy", "complete", {"prompt": "x"})
    assert result.is_error
    [summary] = store.list().items
    assert store.read(summary.id).caller == "local"  # over stdio or in-process: the local caller
