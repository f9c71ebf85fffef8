"""The MCP layer, end to end in-process: its boundary (it never imports litellm), the tool listing, and
`complete` and `stream_complete` (results, tool calls, progress and heartbeats, clean errors, cancellation). The
SDK's real Client, both protocol eras, the real LiteLLMProvider against the scripted upstream. litellm is never
mocked.

Races are settled by waiting on events (progress callbacks set anyio.Events; the
upstream's threading.Events are waited on from a worker thread), never by sleeping.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore
from hive_mcp.mcp import dump_uri
from tests.clients import MODEL, connect, Progress
from tests.clients import text_of, wait_thread_event
from tests.conftest import TEST_KEY
from harness.processes import ROOT, child_env
from harness.upstream import Reply, Upstream, tool_call_delta


# ---------------------------------------------------------------------------
# The layer's boundary
# ---------------------------------------------------------------------------


def test_the_mcp_layer_never_imports_litellm() -> None:
    # A fresh interpreter: this one has litellm loaded already (the provider fixture).
    probe = "import sys, hive_mcp.mcp; print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


# ---------------------------------------------------------------------------
# Tool listing
# ---------------------------------------------------------------------------


async def test_tools_have_schemas_and_annotations(make_server: Callable[..., MCPServer], mode: str) -> None:
    async with connect(make_server(), mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == {"complete", "stream_complete", "list_failed_requests", "list_models", "dashboard"}
    for name in ("complete", "stream_complete"):
        t = tools[name]
        # Unset hints mean the spec's defaults: open world, not read-only; destructive only when said.
        assert t.annotations is not None and t.annotations.open_world_hint in (None, True)
        assert t.annotations.read_only_hint in (None, False) and t.annotations.destructive_hint is False
        assert {"prompt", "messages", "system", "model", "max_tokens", "temperature", "tools", "deadline_s"} <= set(
            t.input_schema["properties"]
        )
        assert t.output_schema is not None
        assert {"content", "model", "stop_reason", "tool_calls"} <= set(t.output_schema["properties"])
        assert not {"attempts", "dump_id", "cost_usd"} & set(t.output_schema["properties"])  # those are in _meta
    listing = tools["list_failed_requests"]
    assert listing.annotations is not None and listing.annotations.read_only_hint is True
    assert listing.output_schema is not None and "next_cursor" in listing.output_schema["properties"]
    models = tools["list_models"]
    assert models.annotations is not None and models.annotations.read_only_hint is True
    assert models.output_schema is not None and "groups" in models.output_schema["properties"]


async def test_calling_a_tool_the_server_does_not_have_is_invalid_params(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    """The spec's protocol error for an unknown tool (-32602), in one line naming it; not a tool result a host
    would hand the model as if the tool had run."""
    async with connect(make_server(), mode) as c:
        with pytest.raises(MCPError) as refused:
            await c.call_tool("no_such_tool", {"prompt": "hi"})
        still = await c.call_tool("list_models", {})
    assert refused.value.code == types.INVALID_PARAMS, refused.value
    assert str(refused.value.error.message) == "Unknown tool: 'no_such_tool'"
    assert not still.is_error


async def test_getting_a_prompt_the_server_does_not_have_is_invalid_params(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    """The prompts page's error for an invalid prompt name (-32602), where the SDK's own handler answers code 0."""
    async with Client(make_server(), raise_exceptions=False, mode=mode) as c:  # the error as the wire carries it
        with pytest.raises(MCPError) as refused:
            await c.get_prompt("nope")
    assert refused.value.code == types.INVALID_PARAMS, refused.value
    assert str(refused.value.error.message) == "Unknown prompt: 'nope'"


async def test_a_cursor_on_a_list_the_server_answers_whole_is_invalid_params(
    make_server: Callable[..., MCPServer], mode: str
) -> None:
    """Pagination: "Invalid cursors SHOULD result in an error with code -32602". The tools and the prompts are
    listed on one page, so no cursor there is one the server made."""
    async with connect(make_server(), mode) as c:
        for listing in (c.list_tools, c.list_prompts):
            with pytest.raises(MCPError) as refused:
                await listing(cursor="garbage", cache_mode="bypass")
            assert refused.value.code == types.INVALID_PARAMS, refused.value
            assert "\n" not in str(refused.value.error.message)
        assert (await c.list_tools()).next_cursor is None  # one page, as said


# ---------------------------------------------------------------------------
# complete
# ---------------------------------------------------------------------------


async def test_complete_returns_structured_content_and_text(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.text("Paris is the capital.", usage={"prompt_tokens": 12, "completion_tokens": 5}))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool(
            "complete",
            {"prompt": "Capital of France?", "system": "Be brief.", "temperature": 0.3, "max_tokens": 50},
        )
    assert not r.is_error
    assert text_of(r) == "Paris is the capital."
    s = r.structured_content
    assert s is not None
    assert s["content"] == "Paris is the capital."
    assert s["model"] == "gpt-4o-mini"
    assert s["stop_reason"] == "stop"
    facts = call_facts(r)
    assert (facts["input_tokens"], facts["output_tokens"], facts["attempts"]) == (12, 5, 1)
    assert s["tool_calls"] == [] and "dump_id" not in facts
    [req] = upstream.chat_requests()
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["temperature"] == 0.3 and req.body["max_tokens"] == 50
    assert req.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]


async def test_complete_model_override_and_json_looking_prompt_stays_text(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    prompt = '{"task": "echo", "items": [1, 2]}'
    upstream.script(Reply.text("ok"))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("complete", {"prompt": prompt, "model": "openai/other-model"})
    assert not r.is_error, text_of(r)
    [req] = upstream.chat_requests()
    assert req.body["model"] == "other-model"
    assert req.messages == [{"role": "user", "content": prompt}]


async def test_complete_tool_calls_pass_through(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    weather = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    upstream.script(
        Reply.text(None, tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]),
        Reply.text("It is sunny."),
    )
    async with connect(make_server(), mode) as c:
        first = await c.call_tool("complete", {"prompt": "Weather in Paris?", "tools": [weather]})
        assert not first.is_error, text_of(first)
        assert first.structured_content is not None
        assert first.structured_content["tool_calls"] == [
            {"id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
        ]
        assert first.structured_content["stop_reason"] == "tool_calls"
        history = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
        ]
        second = await c.call_tool("complete", {"messages": history, "tools": [weather]})
    assert not second.is_error, text_of(second)
    assert text_of(second) == "It is sunny."
    req1, req2 = upstream.chat_requests()
    assert req1.body["tools"] == [{"type": "function", "function": weather}]
    assert req2.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert req2.messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}


async def test_upstream_401_is_one_clean_line(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str
) -> None:
    # OpenAI echoes (part of) a bad key in its message; none of it may reach the client.
    upstream.script(
        Reply.error(401, f"Incorrect API key provided: {TEST_KEY}", code="invalid_api_key", err_type="invalid_request_error")
    )
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("complete", {"prompt": "hi"})
    assert r.is_error
    text = text_of(r)
    [summary] = store.list().items
    assert "\n" not in text
    assert "auth" in text and MODEL in text and "1 attempt" in text
    assert dump_uri(summary.id) in text
    assert "Traceback" not in text and '"error"' not in text
    assert TEST_KEY not in r.model_dump_json()
    assert len(upstream.chat_requests()) == 1


# ---------------------------------------------------------------------------
# stream_complete
# ---------------------------------------------------------------------------


async def test_stream_progress_is_incremental_and_concatenates(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["Hel", "lo, ", "wor", "ld"], hold_after=1))
    progress = Progress()
    async with connect(make_server(), mode) as c, anyio.create_task_group() as tg:
        results: list[types.CallToolResult] = []

        async def call() -> None:
            results.append(await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress))

        tg.start_soon(call)
        # The upstream holds after its first chunk until released: text arriving now
        # proves progress is sent while the upstream is still streaming.
        await progress.wait_for(lambda items: any(m for _, m in items))
        assert not results
        assert progress.text == "Hel"
        upstream.release()
    [r] = results
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert r.structured_content["content"] == "Hello, world" == text_of(r)
    assert progress.text == "Hello, world"
    values = [p for p, _ in progress.items]
    assert all(a < b for a, b in zip(values, values[1:])), values


async def test_fast_text_is_gathered_into_fewer_notifications_whole_and_in_order(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    chunks = [f"w{i} " for i in range(400)]
    upstream.script(Reply.stream(chunks))
    progress = Progress()
    interval = 0.05
    async with connect(make_server(progress_interval_s=interval), mode) as c:
        started = anyio.current_time()
        r = await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress)
        elapsed = anyio.current_time() - started
    assert not r.is_error, text_of(r)
    assert progress.text == "".join(chunks) == text_of(r)
    with_text = [m for _, m in progress.items if m]
    # At most one notification with text per interval (plus the first): 400 chunks, not 400 notifications.
    assert len(with_text) <= elapsed / interval + 2, (len(with_text), elapsed)


async def test_stream_heartbeat_while_upstream_silent(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["a", "b"], hold_after=1))
    progress = Progress()
    async with connect(make_server(heartbeat_s=0.05), mode) as c, anyio.create_task_group() as tg:
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress))
        await progress.wait_for(lambda items: any(m == "a" for _, m in items))
        seen = len(progress.items)
        # Upstream is now silent (held); a message-less notification must still come.
        await progress.wait_for(lambda items: any(m is None for _, m in items[seen:]))
        upstream.release()
    values = [p for p, _ in progress.items]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert progress.text == "ab"


async def test_complete_sends_heartbeats_while_the_model_is_silent(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    # A slow model on `complete`: a client that resets its timeout on progress must hear something.
    upstream.script(Reply.hang())
    progress = Progress()
    async with connect(make_server(heartbeat_s=0.02), mode) as c, anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def call() -> None:
            with scope:
                await c.call_tool("complete", {"prompt": "think hard"}, progress_callback=progress)
                pytest.fail("the upstream never answered: the call cannot have returned")

        tg.start_soon(call)
        await progress.wait_for(lambda items: len(items) >= 3)
        assert len(upstream.chat_requests()) == 1  # waiting on the model, not in a queue
        scope.cancel()
    assert progress.heartbeats == len(progress.items) >= 3  # heartbeats carry no message
    assert progress.increasing(), progress.items
    assert await wait_thread_event(upstream.client_gone), "the cancelled call left its upstream request open"


async def test_stream_without_progress_token_still_returns(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["one ", "two"]))
    async with connect(make_server(heartbeat_s=0.01), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "count"})
    assert not r.is_error, text_of(r)
    assert text_of(r) == "one two"


async def test_stream_tool_calls_pass_through(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(
        Reply.stream(
            [
                tool_call_delta(0, id="call_9", name="lookup", args='{"q": '),
                tool_call_delta(0, args='"mcp"}'),
            ],
            finish_reason="tool_calls",
        )
    )
    tool = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "search", "tools": [tool]})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert r.structured_content["tool_calls"] == [{"id": "call_9", "name": "lookup", "input": {"q": "mcp"}}]
    assert upstream.chat_requests()[0].body["tools"][0]["function"]["name"] == "lookup"


async def test_stream_upstream_failure_is_one_clean_line(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.error(401, f"Incorrect API key provided: {TEST_KEY}"))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=Progress())
    assert r.is_error
    text = text_of(r)
    [summary] = store.list().items
    assert "\n" not in text and "auth" in text and MODEL in text and "1 attempt" in text
    assert dump_uri(summary.id) in text
    assert TEST_KEY not in r.model_dump_json()


async def test_cancel_closes_upstream_and_server_keeps_serving(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["first", "never"], hold_after=1), Reply.text("still here"))
    progress = Progress()
    async with connect(make_server(), mode) as c:
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress)

            tg.start_soon(call)
            await progress.wait_for(lambda items: any(m for _, m in items))
            assert not upstream.client_gone.is_set()
            scope.cancel()
        assert await wait_thread_event(upstream.client_gone), "upstream connection still open after the cancel"
        r = await c.call_tool("complete", {"prompt": "again"})
    assert not r.is_error, text_of(r)
    assert text_of(r) == "still here"
