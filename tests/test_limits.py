"""Cost control on what a call asks for, end to end in-process: allowed models, the max_tokens cap,
deadlines and the input size limit, and the settings the limits are read from (hive_mcp/limits.py, used by
the server). How many calls run at once is tests/test_limits_in_flight.py.

The real LiteLLMProvider talks to the scripted upstream; nothing is mocked. Races
are settled by events and bounded deadlines, never by sleeping for a guessed time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import LimitError, Limits, input_size
from hive_mcp.mcp import dump_uri
from hive_mcp.settings import SettingsError, load_settings
from tests.clients import MODEL, WAIT, connect, mcp_server, Progress, text_of
from tests.conftest import DEADLINE_S
from tests.limit_calls import TOOLS, assert_refused, held_stream, ok_reply
from harness.upstream import Reply, Upstream


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
