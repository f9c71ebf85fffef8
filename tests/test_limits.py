"""Cost control, end to end in-process: allowed models, the max_tokens cap, calls in
flight, deadlines and the input size limit (hive_mcp/limits.py, used by the server).

The real LiteLLMProvider talks to the scripted upstream; nothing is mocked. Races
are settled by events and by polling counts under a bounded deadline, never by
sleeping for a guessed time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Busy, LimitError, Limits, input_size
from hive_mcp.mcp import dump_uri
from hive_mcp.settings import SettingsError, load_settings
from tests.clients import MODEL, WAIT, connect, mcp_server, Progress, text_of, until
from tests.conftest import DEADLINE_S
from harness.upstream import Reply, Upstream

TOOLS = ["complete", "stream_complete"]


@pytest.fixture
def make_server(provider: Any, store: DumpStore) -> Callable[..., MCPServer]:
    def make(limits: Limits | None = None, **kwargs: Any) -> MCPServer:
        return mcp_server(provider, store, limits=limits, **kwargs)

    return make


def ok_reply(tool: str, text: str = "ok") -> Reply:
    return Reply.stream([text]) if tool == "stream_complete" else Reply.text(text)


def held_stream() -> Reply:
    """A stream that sends one chunk, then waits for `upstream.release()`."""
    return Reply.stream(["first ", "second"], hold_after=1)


def assert_refused(result: types.CallToolResult, *needles: str) -> str:
    assert result.is_error
    text = text_of(result)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


# ---------------------------------------------------------------------------
# Allowed models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
async def test_model_outside_the_allowed_patterns_is_refused(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str, tool: str
) -> None:
    limits = Limits(allowed_models=["anthropic/*", "openai/gpt-4o*"])
    upstream.script(ok_reply(tool))
    async with connect(make_server(limits), mode) as c:
        refused = await c.call_tool(tool, {"prompt": "hi", "model": "openai/gpt-3.5-turbo"})
        assert_refused(refused, "model", "openai/gpt-3.5-turbo", "anthropic/*", "openai/gpt-4o*")
        assert upstream.requests == []
        allowed = await c.call_tool(tool, {"prompt": "hi", "model": "openai/gpt-4o-2024-08-06"})
    assert not allowed.is_error, text_of(allowed)
    [req] = upstream.chat_requests()
    assert req.body["model"] == "gpt-4o-2024-08-06"
    assert store.count() == 0


async def test_default_model_is_allowed_even_when_no_pattern_matches(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    # The choice: the operator's default model always passes, named or not.
    limits = Limits(allowed_models=["anthropic/*"])
    async with connect(make_server(limits), mode) as c:
        implicit = await c.call_tool("complete", {"prompt": "hi"})
        explicit = await c.call_tool("complete", {"prompt": "hi", "model": MODEL})
        other = await c.call_tool("complete", {"prompt": "hi", "model": "openai/gpt-4o"})
    assert not implicit.is_error and not explicit.is_error
    assert_refused(other, "model", "anthropic/*")
    assert [r.body["model"] for r in upstream.chat_requests()] == ["gpt-4o-mini", "gpt-4o-mini"]


def test_allowed_model_patterns_are_fnmatch_and_case_sensitive() -> None:
    limits = Limits(allowed_models=[" gpt-4o* ", "", "anthropic/claude-?-*"])
    assert limits.allowed_models == ("gpt-4o*", "anthropic/claude-?-*")
    assert limits.model_allowed("gpt-4o") and limits.model_allowed("gpt-4o-mini")
    assert limits.model_allowed("anthropic/claude-3-opus")
    assert not limits.model_allowed("GPT-4O") and not limits.model_allowed("openai/gpt-4o")
    assert Limits().model_allowed("anything/at-all")


# ---------------------------------------------------------------------------
# max_tokens cap
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
async def test_max_tokens_over_the_cap_is_refused(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str, tool: str
) -> None:
    upstream.script(ok_reply(tool))
    async with connect(make_server(Limits(max_tokens=100)), mode) as c:
        refused = await c.call_tool(tool, {"prompt": "hi", "max_tokens": 101})
        assert_refused(refused, "max_tokens", "101", "cap of 100")
        assert upstream.requests == []
        at_cap = await c.call_tool(tool, {"prompt": "hi", "max_tokens": 100})
    assert not at_cap.is_error, text_of(at_cap)
    [req] = upstream.chat_requests()
    assert req.body["max_tokens"] == 100


@pytest.mark.parametrize(
    ("cap", "tool", "sent"),
    [
        (None, "complete", 1024),  # the provider's own defaults, for reference
        (None, "stream_complete", 4096),
        (100, "complete", 100),  # the cap is lower than the default: the cap is sent
        (100, "stream_complete", 100),
        (2000, "complete", 1024),  # the default is lower than the cap: the default stays
        (2000, "stream_complete", 2000),
    ],
)
async def test_max_tokens_default_is_capped(
    make_server: Callable[..., MCPServer], upstream: Upstream, cap: int | None, tool: str, sent: int
) -> None:
    upstream.script(ok_reply(tool))
    async with connect(make_server(Limits(max_tokens=cap)), "auto") as c:
        r = await c.call_tool(tool, {"prompt": "hi"})
    assert not r.is_error, text_of(r)
    [req] = upstream.chat_requests()
    assert req.body["max_tokens"] == sent


@pytest.mark.parametrize(
    ("cap", "asked", "sent"),
    [
        (None, None, 300),  # the server's default replaces the provider's
        (200, None, 200),  # and the cap still bounds it
        (None, 50, 50),  # a call's own max_tokens wins
    ],
)
@pytest.mark.parametrize("tool", TOOLS)
async def test_server_default_max_tokens(
    make_server: Callable[..., MCPServer], upstream: Upstream, tool: str, cap: int | None, asked: int | None, sent: int
) -> None:
    upstream.script(ok_reply(tool))
    args: dict[str, Any] = {"prompt": "hi"} if asked is None else {"prompt": "hi", "max_tokens": asked}
    async with connect(make_server(Limits(max_tokens=cap), default_max_tokens=300), "auto") as c:
        r = await c.call_tool(tool, args)
    assert not r.is_error, text_of(r)
    [req] = upstream.chat_requests()
    assert req.body["max_tokens"] == sent


def test_server_default_max_tokens_must_be_positive(provider: Any, store: DumpStore) -> None:
    with pytest.raises(ValueError, match="default_max_tokens"):
        mcp_server(provider, store, default_max_tokens=0)


# ---------------------------------------------------------------------------
# Calls in flight
# ---------------------------------------------------------------------------


async def _hold_two_streams(c: Any, tg: Any) -> None:
    """Start two stream_complete calls and return once both are streaming at the upstream."""
    for _ in range(2):
        progress = Progress()
        tg.start_soon(lambda p=progress: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=p))
        await progress.wait_for(lambda items: any(m for _, m in items))


async def test_call_beyond_the_limit_waits_then_runs(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    limits = Limits(max_in_flight=2, queue_timeout_s=60)
    upstream.script(held_stream(), held_stream(), Reply.text("third"))
    results: list[types.CallToolResult] = []
    async with connect(make_server(limits), mode) as c, anyio.create_task_group() as tg:
        await _hold_two_streams(c, tg)
        assert limits.in_flight == 2

        async def third() -> None:
            results.append(await c.call_tool("complete", {"prompt": "third"}))

        tg.start_soon(third)
        await until(lambda: limits.waiting == 1, "the third call to queue")
        assert len(upstream.chat_requests()) == 2  # the third waits in the server, not at the upstream
        assert results == []
        upstream.release()
        await until(lambda: len(results) == 1, "the third call to finish")
    [r] = results
    assert not r.is_error and text_of(r) == "third"
    assert len(upstream.chat_requests()) == 3
    assert (limits.in_flight, limits.waiting) == (0, 0)


@pytest.mark.parametrize("tool", TOOLS)
async def test_call_that_waits_too_long_is_busy(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str, tool: str
) -> None:
    limits = Limits(max_in_flight=2, queue_timeout_s=0.2)
    upstream.script(held_stream(), held_stream())
    async with connect(make_server(limits), mode) as c:
        async with anyio.create_task_group() as tg:
            await _hold_two_streams(c, tg)
            with anyio.fail_after(WAIT):
                busy = await c.call_tool(tool, {"prompt": "third"})
            assert_refused(busy, "busy", "2 calls", "0.2s")
            assert len(upstream.chat_requests()) == 2
            assert (limits.in_flight, limits.waiting) == (2, 0)
            upstream.release()
        await until(lambda: limits.in_flight == 0, "the held calls to end")
        upstream.script(ok_reply(tool, "after"))
        after = await c.call_tool(tool, {"prompt": "again"})
    assert not after.is_error and text_of(after) == "after"
    assert store.count() == 0  # a busy refusal writes no dump


@pytest.mark.parametrize("tool", TOOLS)
async def test_queued_call_sends_heartbeats_then_runs(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str, tool: str
) -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    upstream.script(held_stream(), ok_reply(tool, "queued reply"))
    results: list[types.CallToolResult] = []
    queued = Progress()
    async with connect(make_server(limits, heartbeat_s=0.02), mode) as c, anyio.create_task_group() as tg:
        holder = Progress()
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=holder))
        await holder.wait_for(lambda items: any(m for _, m in items))

        async def queued_call() -> None:
            results.append(await c.call_tool(tool, {"prompt": "wait"}, progress_callback=queued))

        tg.start_soon(queued_call)
        await until(lambda: limits.waiting == 1, "the call to queue")
        await queued.wait_for(lambda items: queued.heartbeats >= 2)
        assert limits.waiting == 1 and len(upstream.chat_requests()) == 1  # still queued, upstream untouched
        upstream.release()
        await until(lambda: len(results) == 1, "the queued call to finish")
    [r] = results
    assert not r.is_error and text_of(r) == "queued reply"
    assert queued.increasing(), queued.items  # one count over the queue, the wait and the stream
    assert queued.text == ("queued reply" if tool == "stream_complete" else "")


async def test_cancelled_waiter_releases_nothing(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    upstream.script(held_stream(), Reply.text("next"))
    async with connect(make_server(limits), mode) as c, anyio.create_task_group() as tg:
        progress = Progress()
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=progress))
        await progress.wait_for(lambda items: any(m for _, m in items))

        scope = anyio.CancelScope()

        async def waiter() -> None:
            with scope:
                await c.call_tool("complete", {"prompt": "impatient"})

        tg.start_soon(waiter)
        await until(lambda: limits.waiting == 1, "the second call to queue")
        scope.cancel()
        await until(lambda: limits.waiting == 0, "the cancelled call to leave the queue")
        assert limits.in_flight == 1  # the stream still holds the only slot

        # So the next call must wait too, not slip through a slot the cancelled one gave back.
        results: list[types.CallToolResult] = []

        async def next_call() -> None:
            results.append(await c.call_tool("complete", {"prompt": "next"}))

        tg.start_soon(next_call)
        await until(lambda: limits.waiting == 1, "the next call to queue")
        assert len(upstream.chat_requests()) == 1
        upstream.release()
        await until(lambda: len(results) == 1, "the next call to finish")
    assert text_of(results[0]) == "next"
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    holder = limits.slot()
    await holder.__aenter__()
    b_scope = anyio.CancelScope()
    c_ran = anyio.Event()

    async def b() -> None:
        with b_scope:
            async with limits.slot():
                pytest.fail("b was cancelled: it must not run")

    async def c() -> None:
        async with limits.slot():
            c_ran.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(b)
        await until(lambda: limits.waiting == 1, "b to queue")
        tg.start_soon(c)
        await until(lambda: limits.waiting == 2, "c to queue")
        # Hand the slot to b and cancel b before it runs again: b must pass it on to c.
        await holder.__aexit__(None, None, None)
        b_scope.cancel()
        with anyio.fail_after(WAIT):
            await c_ran.wait()
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_zero_queue_timeout_still_takes_a_free_slot() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=0)
    async with limits.slot():
        assert limits.in_flight == 1
        with pytest.raises(Busy):
            async with limits.slot():
                pytest.fail("no slot was free")
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_queue_timeout_takes_nothing() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=0.05)
    async with limits.slot():
        with pytest.raises(Busy) as info:
            async with limits.slot():
                pytest.fail("no slot was free")
        assert (limits.in_flight, limits.waiting) == (1, 0)
        assert "\n" not in str(info.value) and "busy" in str(info.value)
    assert limits.in_flight == 0
    async with limits.slot():  # and the slot is there for the next one
        assert limits.in_flight == 1


# ---------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------


async def test_per_call_deadline_ends_a_hung_call_with_a_dump(
    make_server: Callable[..., MCPServer], warm: Any, upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.hang(), Reply.text("fine"))
    async with connect(make_server(Limits(deadline_s=600)), mode) as c:
        with anyio.fail_after(WAIT):
            r = await c.call_tool("complete", {"prompt": "hi", "deadline_s": DEADLINE_S})
        assert len(upstream.chat_requests()) == 1, "the request never reached the upstream: the deadline ran out first"
        after = await c.call_tool("complete", {"prompt": "again"})
    text = assert_refused(r, "timeout", f"{DEADLINE_S:g}s")
    [summary] = store.list().items
    assert summary.error_type == "timeout"
    assert dump_uri(summary.id) in text
    assert not after.is_error


async def test_per_call_deadline_ends_a_stalled_stream_with_a_dump(
    make_server: Callable[..., MCPServer], warm: Any, upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(held_stream())
    progress = Progress()
    async with connect(make_server(), mode) as c:
        with anyio.fail_after(WAIT):
            r = await c.call_tool("stream_complete", {"prompt": "hi", "deadline_s": DEADLINE_S},
                                  progress_callback=progress)  # fmt: skip
    assert upstream.chunk_sent.is_set() and progress.text == "first ", "the stream stalled after its first chunk"
    text = assert_refused(r, "timeout", f"{DEADLINE_S:g}s")
    [summary] = store.list().items
    assert summary.error_type == "timeout" and dump_uri(summary.id) in text


async def test_configured_deadline_applies_without_a_per_call_one(
    make_server: Callable[..., MCPServer], warm: Any, upstream: Upstream, store: DumpStore
) -> None:
    # The provider's own deadline is 600 s: only the server's limit can end this call.
    upstream.script(Reply.hang())
    async with connect(make_server(Limits(deadline_s=DEADLINE_S)), "auto") as c:
        with anyio.fail_after(WAIT):
            r = await c.call_tool("complete", {"prompt": "hi"})
    assert upstream.request_seen.is_set(), "the request never reached the upstream: the deadline ran out first"
    assert_refused(r, "timeout", f"{DEADLINE_S:g}s")
    assert store.count() == 1


@pytest.mark.parametrize("tool", TOOLS)
async def test_deadline_over_the_configured_one_is_refused(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str, tool: str
) -> None:
    async with connect(make_server(Limits(deadline_s=60)), mode) as c:
        r = await c.call_tool(tool, {"prompt": "hi", "deadline_s": 61})
    assert_refused(r, "deadline_s", "61", "60s")
    assert upstream.requests == []


# ---------------------------------------------------------------------------
# Input size
# ---------------------------------------------------------------------------

WEATHER_TOOL = {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"prompt": "x" * 1001}, "prompt", id="prompt"),
        pytest.param({"prompt": "é" * 600}, "prompt", id="utf8-bytes-not-characters"),
        pytest.param({"messages": [{"role": "user", "content": "y" * 1000}]}, "messages", id="messages"),
        pytest.param({"prompt": "short", "system": "s" * 995}, "system", id="sum-names-the-largest"),
        pytest.param(
            {"prompt": "a" * 400, "tools": [{**WEATHER_TOOL, "description": "d" * 600}]}, "tools", id="tools"
        ),
    ],
)
@pytest.mark.parametrize("tool", TOOLS)
async def test_input_over_the_limit_is_refused(
    make_server: Callable[..., MCPServer],
    upstream: Upstream,
    mode: str,
    tool: str,
    arguments: dict[str, Any],
    field: str,
) -> None:
    async with connect(make_server(Limits(max_input_bytes=1000)), mode) as c:
        r = await c.call_tool(tool, arguments)
    assert_refused(r, f"{field}: ", "1,000")
    assert upstream.requests == []


@pytest.mark.parametrize("tool", TOOLS)
async def test_input_under_the_limit_passes(
    make_server: Callable[..., MCPServer], upstream: Upstream, tool: str
) -> None:
    upstream.script(ok_reply(tool))
    arguments = {"prompt": "x" * 400, "system": "s" * 400, "tools": [WEATHER_TOOL]}
    async with connect(make_server(Limits(max_input_bytes=1000)), "auto") as c:
        r = await c.call_tool(tool, arguments)
    assert not r.is_error, text_of(r)
    assert len(upstream.chat_requests()) == 1


def test_input_size_is_utf8_json() -> None:
    assert input_size("é") == len('"é"'.encode()) == 4
    assert input_size([{"role": "user", "content": "hi"}]) == len('[{"role":"user","content":"hi"}]')
    limits = Limits(max_input_bytes=10)
    assert limits.check_input_size({"prompt": "12345678", "system": None}) == 10
    with pytest.raises(LimitError) as info:
        limits.check_input_size({"prompt": "123456789"})
    assert info.value.field == "prompt"


# ---------------------------------------------------------------------------
# Settings -> Limits
# ---------------------------------------------------------------------------


def test_settings_defaults_and_environment(tmp_path: Path) -> None:
    defaults = Limits.from_settings(load_settings(environ={}, cwd=tmp_path))
    assert defaults.allowed_models == () and defaults.max_tokens is None
    assert (defaults.max_in_flight, defaults.queue_timeout_s, defaults.deadline_s) == (64, 30.0, 600.0)
    assert defaults.max_input_bytes == 1024 * 1024

    environ = {
        "HIVE_MCP_ALLOWED_MODELS": " gpt-4o*, anthropic/* ,",
        "HIVE_MCP_MAX_TOKENS": "2048",
        "HIVE_MCP_MAX_IN_FLIGHT": "4",
        "HIVE_MCP_QUEUE_TIMEOUT_S": "2.5",
        "HIVE_MCP_DEADLINE_S": "120",
        "HIVE_MCP_MAX_INPUT_BYTES": "5000",
    }
    limits = Limits.from_settings(load_settings(environ=environ, cwd=tmp_path))
    assert limits.allowed_models == ("gpt-4o*", "anthropic/*")
    assert (limits.max_tokens, limits.max_in_flight, limits.queue_timeout_s) == (2048, 4, 2.5)
    assert (limits.deadline_s, limits.max_input_bytes) == (120.0, 5000)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HIVE_MCP_MAX_TOKENS", "0"),
        ("HIVE_MCP_MAX_IN_FLIGHT", "0"),
        ("HIVE_MCP_QUEUE_TIMEOUT_S", "-1"),
        ("HIVE_MCP_DEADLINE_S", "0"),
        ("HIVE_MCP_DEADLINE_S", "inf"),
        ("HIVE_MCP_MAX_INPUT_BYTES", "lots"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={var: value}, cwd=tmp_path)
    assert str(info.value).startswith(var) and "\n" not in str(info.value)


async def test_a_caller_past_their_share_waits_behind_their_own_calls_not_in_front_of_others() -> None:
    limits = Limits(max_in_flight=3, caller_in_flight=2, queue_timeout_s=60)
    hold, order = anyio.Event(), []

    async def call(who: str, tag: str) -> None:
        async with limits.slot(who):
            order.append(tag)
            await hold.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "alice", "a1")
        tg.start_soon(call, "alice", "a2")
        tg.start_soon(call, "alice", "a3")  # past her share: waits for one of hers
        await until(lambda: (limits.in_flight, limits.waiting) == (2, 1), "alice's third call to wait")
        tg.start_soon(call, "bob", "b1")  # the third slot is Bob's, at once
        await until(lambda: "b1" in order, "bob's call to be admitted")
        assert order == ["a1", "a2", "b1"] and (limits.in_flight, limits.waiting) == (3, 1)
        hold.set()
    assert order[-1] == "a3" and (limits.in_flight, limits.waiting) == (0, 0)
    assert limits._shares == {}  # a caller's share goes once nothing of theirs holds or waits


async def test_a_caller_waiting_for_their_share_too_long_is_busy() -> None:
    limits = Limits(max_in_flight=4, caller_in_flight=1, queue_timeout_s=0.05)
    async with limits.slot("alice"):
        with pytest.raises(Busy) as info:
            async with limits.slot("alice"):
                pytest.fail("her one share was taken")
        assert "of this caller's" in str(info.value) and "\n" not in str(info.value)
        async with limits.slot("bob"):
            assert limits.in_flight == 2


def test_callers_get_half_the_slots_over_http_and_all_of_them_over_stdio(tmp_path: Path) -> None:
    from hive_mcp.settings import Settings

    assert Limits.from_settings(Settings(transport="http", max_in_flight=64)).caller_in_flight == 32
    assert Limits.from_settings(Settings(transport="http", max_in_flight=1)).caller_in_flight == 1
    assert Limits.from_settings(Settings(transport="sse", caller_in_flight=5)).caller_in_flight == 5
    assert Limits.from_settings(Settings(transport="stdio")).caller_in_flight is None
