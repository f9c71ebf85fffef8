"""Bad input, gathered: every malformed argument, id, cursor or timestamp gets an
`isError` result or an MCP error naming the field, in one line; nothing reaches
the upstream, nothing is dumped, and the server goes on serving. Both protocol eras.

Then random JSON (hypothesis) at every tool and at resources/read: every call is
answered, never a hang, a crash or a multi-line error.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import mcp_types as types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from hive_mcp.dumps import DumpStore, make_dump_id
from hive_mcp.limits import Limits
from hive_mcp.mcp import DUMP_URI_PREFIX, INDEX_URI, dump_uri
from tests.bad_calls import CAP, DEADLINE, checked, limited_server, prompt_and, tool_with
from tests.clients import MODEL, connect, make_dump, mcp_server, text_of
from tests.conftest import FAST_RETRY, TEST_KEY
from harness.upstream import Reply, Upstream

MiB = 1024 * 1024
MAX_ERROR_LEN = 300


@pytest.fixture
def server(provider: Any, store: DumpStore) -> MCPServer:
    return limited_server(provider, store)


def assert_one_line(text: str, names: list[str]) -> None:
    assert "\n" not in text and "\r" not in text and len(text) < MAX_ERROR_LEN, text
    for name in names:
        assert name in text, (name, text)


# ---------------------------------------------------------------------------
# complete and stream_complete
# ---------------------------------------------------------------------------

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def case(arguments: dict[str, Any], *names: str, id: str) -> Any:
    """One bad call: its arguments and what the error must name."""
    return pytest.param(arguments, list(names), id=id)


def one_message(**message: Any) -> dict[str, Any]:
    return {"messages": [message]}


def property_schema(**schema: Any) -> dict[str, Any]:
    return tool_with({"type": "object", "properties": {"city": schema}})


LIMIT = "1,048,576"
PARAMS = "tools[0].parameters"

BAD_COMPLETE = [
    # prompt / messages
    case({}, "prompt", "messages", "neither", id="neither"),
    case(prompt_and(messages=[{"role": "user", "content": "y"}]), "prompt", "messages", "both", id="both"),
    case({"prompt": "   "}, "prompt", id="prompt-blank"),
    case({"prompt": 5}, "prompt", id="prompt-number"),
    case({"prompt": "x" * (MiB + 1)}, "prompt", LIMIT, id="prompt-over-input-limit"),
    case({"messages": [{"role": "user", "content": "x" * (MiB // 2)}] * 2}, "messages", LIMIT, id="messages-over"),
    case({"prompt": "x" * (MiB // 2), "system": "s" * (MiB // 2 + 1)}, "system", LIMIT, id="input-sum-over-limit"),
    case({"messages": []}, "messages", "empty", id="empty-messages"),
    case({"messages": "hello"}, "messages", id="messages-string"),
    case({"messages": {"role": "user"}}, "messages", id="messages-object"),
    case({"messages": [5]}, "messages[0]", id="message-number"),
    case(one_message(content="x"), "messages[0].role", id="missing-role"),
    case(one_message(role="robot", content="x"), "messages[0].role", "robot", id="unknown-role"),
    case(one_message(role="user", content=42), "messages[0].content", id="content-number"),
    case(one_message(role="user", content={"text": "x"}), "messages[0].content", id="content-object"),
    case(one_message(role="user", content=[5]), "messages[0].content[0]", id="content-list-of-numbers"),
    case(one_message(role="user", content=[{"text": "no type"}]), "messages[0].content", "type", id="part-no-type"),
    case(one_message(role="user", content=[{"type": "text"}]), "messages[0].content", "text", id="text-part-no-text"),
    case(one_message(role="user"), "messages[0]", "content", id="user-without-content"),
    case(one_message(role="tool", content="x"), "messages[0]", "tool_call_id", id="tool-without-call-id"),
    case(prompt_and(system=5), "system", id="system-number"),
    # text that is not valid Unicode: a JSON escape of half a surrogate pair, alone
    case({"prompt": "smile \ud83d"}, "prompt", "Unicode", "U+D83D", id="prompt-lone-surrogate"),
    case(prompt_and(system="\udc00"), "system", "Unicode", id="system-lone-surrogate"),
    case(one_message(role="user", content=[{"type": "text", "text": "a\ud800b"}]), "messages[0].content[0].text",
         "Unicode", id="part-lone-surrogate"),
    case(prompt_and(tools=[{"name": "a", "description": "\udfff"}]), "tools[0].description", "Unicode",
         id="tool-description-lone-surrogate"),
    case(one_message(role="user", content="x", **{"note\nfrom me": "\udc00"}), "messages[0].note from me", "Unicode",
         id="lone-surrogate-under-a-key-with-a-newline"),
    # model
    case(prompt_and(model=""), "model", id="model-empty"),
    case(prompt_and(model=5), "model", id="model-number"),
    case(prompt_and(model="anthropic/claude-x"), "model", "openai/*", id="model-not-allowed"),
    # max_tokens
    case(prompt_and(max_tokens=0), "max_tokens", id="max-tokens-zero"),
    case(prompt_and(max_tokens=-5), "max_tokens", id="max-tokens-negative"),
    case(prompt_and(max_tokens=CAP + 1), "max_tokens", str(CAP), id="max-tokens-over-cap"),
    case(prompt_and(max_tokens="ten"), "max_tokens", id="max-tokens-string"),
    case(prompt_and(max_tokens=1.5), "max_tokens", id="max-tokens-fraction"),
    case(prompt_and(max_tokens=True), "max_tokens", id="max-tokens-bool"),
    # temperature
    case(prompt_and(temperature=2.5), "temperature", id="temperature-high"),
    case(prompt_and(temperature=-0.1), "temperature", id="temperature-negative"),
    case(prompt_and(temperature="hot"), "temperature", id="temperature-string"),
    case(prompt_and(temperature=True), "temperature", id="temperature-bool"),
    # tools: shape, names, and the parameters schema
    case(prompt_and(tools="weather"), "tools", id="tools-string"),
    case(prompt_and(tools=[5]), "tools[0]", id="tool-number"),
    case(prompt_and(tools=[{"name": "has space"}]), "tools[0].name", id="tool-name-invalid"),
    case(prompt_and(tools=[{"name": "a", "colour": "red"}]), "tools[0]", "colour", id="tool-unknown-key"),
    case(prompt_and(tools=[{"name": "a"}, {"name": "a"}]), "tools[1].name", "duplicate", id="tools-duplicate"),
    case(tool_with("not json"), PARAMS, id="schema-not-an-object"),
    case(tool_with({"type": "string"}), PARAMS, "object", id="schema-type-string"),
    case(tool_with({"type": "object", "properties": ["city"]}), PARAMS, "properties", id="schema-properties-list"),
    case(tool_with({"type": "object", "properties": {"city": "str"}}), PARAMS, "properties", id="schema-property-str"),
    case(tool_with({**WEATHER, "required": "city"}), PARAMS, "required", id="schema-required-string"),
    case(tool_with({**WEATHER, "required": [1]}), PARAMS, "required", id="schema-required-numbers"),
    case(property_schema(type="strin"), PARAMS, "properties.city.type", id="schema-unknown-type"),
    case(property_schema(type="string", pattern="("), PARAMS, "pattern", id="schema-bad-regex"),
    case(property_schema(type="integer", minimum="zero"), PARAMS, "minimum", id="schema-bad-keyword-value"),
    # response_format, deadline_s, the rest
    case(prompt_and(response_format="json"), "response_format", id="response-format-string"),
    case(prompt_and(response_format=[1]), "response_format", id="response-format-list"),
    case(prompt_and(response_format=5), "response_format", id="response-format-number"),
    case(prompt_and(deadline_s=0), "deadline_s", id="deadline-zero"),
    case(prompt_and(deadline_s=-1), "deadline_s", id="deadline-negative"),
    case(prompt_and(deadline_s=DEADLINE + 1), "deadline_s", f"{DEADLINE}s", id="deadline-over-configured"),
    case(prompt_and(deadline_s="soon"), "deadline_s", id="deadline-string"),
    case(prompt_and(deadline_s=True), "deadline_s", id="deadline-bool"),
    case(prompt_and(max_retries=11), "max_retries", id="max-retries-high"),
    case(prompt_and(json_mode="maybe"), "json_mode", id="json-mode-string"),
    case(prompt_and(max_token=5), "max_token", id="unknown-argument"),
    # integers out of any range: one line naming the field, never the digits
    case(prompt_and(max_tokens=10**400), "max_tokens", id="max-tokens-huge"),
    case(prompt_and(max_tokens=-(10**400)), "max_tokens", id="max-tokens-huge-negative"),
    case(prompt_and(deadline_s=10**400), "deadline_s", id="deadline-huge"),
    case(prompt_and(temperature=10**400), "temperature", id="temperature-huge"),
    case(prompt_and(max_retries=10**400), "max_retries", id="max-retries-huge"),
    case(prompt_and(top_p=10**400), "top_p", id="unknown-huge"),
]


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize(("arguments", "names"), BAD_COMPLETE)
async def test_bad_completion_arguments(
    server: MCPServer,
    upstream: Upstream,
    store: DumpStore,
    mode: str,
    tool: str,
    arguments: dict[str, Any],
    names: list[str],
) -> None:
    async with checked(server, upstream, store, mode) as c:
        r = await c.call_tool(tool, arguments)
        assert r.is_error
        assert_one_line(text_of(r), names)


# ---------------------------------------------------------------------------
# list_failed_requests
# ---------------------------------------------------------------------------

BAD_LISTING = [
    pytest.param({"since": "last tuesday"}, ["since", "ISO 8601"], id="since-words"),
    pytest.param({"since": ""}, ["since"], id="since-empty"),
    pytest.param({"since": 5}, ["since"], id="since-number"),
    pytest.param({"since": "2026-13-45T99:00:00Z"}, ["since"], id="since-impossible-date"),
    pytest.param({"cursor": "bogus!"}, ["cursor"], id="cursor-garbage"),
    pytest.param({"cursor": "YWJj"}, ["cursor"], id="cursor-base64-not-an-id"),
    pytest.param({"cursor": "\x00"}, ["cursor"], id="cursor-nul"),
    pytest.param({"cursor": "x" * 10_000}, ["cursor"], id="cursor-10000"),
    pytest.param({"cursor": 5}, ["cursor"], id="cursor-number"),
    pytest.param({"cursor": "\ud800"}, ["cursor", "Unicode"], id="cursor-lone-surrogate"),
    pytest.param({"limit": 0}, ["limit"], id="limit-zero"),
    pytest.param({"limit": 201}, ["limit"], id="limit-high"),
    pytest.param({"limit": True}, ["limit"], id="limit-bool"),
    pytest.param({"error_type": ["auth"]}, ["error_type"], id="error-type-list"),
    pytest.param({"page": 2}, ["page"], id="unknown-argument"),
    pytest.param({"limit": 10**400}, ["limit"], id="limit-huge"),
]


@pytest.mark.parametrize(("arguments", "names"), BAD_LISTING)
async def test_bad_listing_arguments(
    server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, arguments: dict[str, Any], names: list[str]
) -> None:
    async with checked(server, upstream, store, mode) as c:
        r = await c.call_tool("list_failed_requests", arguments)
        assert r.is_error
        assert_one_line(text_of(r), names)


# ---------------------------------------------------------------------------
# resources/read and resources/list
# ---------------------------------------------------------------------------

UNKNOWN_ID = make_dump_id(datetime(2026, 1, 1, tzinfo=UTC), "auth", MODEL)  # well formed, never written

BAD_URIS = [
    pytest.param(dump_uri("../x"), id="dot-dot"),
    pytest.param(dump_uri("../../etc/passwd"), id="dot-dot-passwd"),
    pytest.param(dump_uri("/etc/passwd"), id="absolute"),
    pytest.param(dump_uri("%2e%2e%2f"), id="percent-encoded-dot-dot"),
    pytest.param(dump_uri("..%2F..%2Fetc%2Fpasswd"), id="percent-encoded-slashes"),
    pytest.param(dump_uri("\x00"), id="nul"),
    pytest.param(dump_uri(UNKNOWN_ID + "\x00"), id="id-then-nul"),
    pytest.param(dump_uri(UNKNOWN_ID + "/../x"), id="id-then-dot-dot"),
    pytest.param(dump_uri("a" * 10_000), id="10000-chars"),
    pytest.param(dump_uri(""), id="empty-id"),
    pytest.param(dump_uri("{id}"), id="template"),
    pytest.param(dump_uri(UNKNOWN_ID), id="unknown-id"),
    pytest.param("outside", id="valid-id-outside-the-store"),
    pytest.param("hive://other", id="unknown-resource"),
]


@pytest.mark.parametrize("uri", BAD_URIS)
async def test_bad_dump_uris_are_not_found(
    server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, uri: str, tmp_path: Path
) -> None:
    if uri == "outside":  # a real dump, one directory up: must stay unreachable
        outside = make_dump(1)
        DumpStore(tmp_path / "elsewhere").write(outside)
        uri = f"{DUMP_URI_PREFIX}../elsewhere/{outside.id}"
    expected = -32002 if mode == "legacy" else types.INVALID_PARAMS  # resource-not-found of each era
    async with checked(server, upstream, store, mode) as c:
        with pytest.raises(MCPError) as info:
            await c.read_resource(uri, cache_mode="bypass")
        assert info.value.error.code == expected
        assert_one_line(info.value.error.message, ["not found", "uri"])


@pytest.mark.parametrize("cursor", ["not a cursor!", "YWJj", "\x00", "x" * 10_000, "../x"])
async def test_bad_resource_cursors(
    server: MCPServer, upstream: Upstream, store: DumpStore, mode: str, cursor: str
) -> None:
    async with checked(server, upstream, store, mode) as c:
        with pytest.raises(MCPError) as info:
            await c.list_resources(cursor=cursor, cache_mode="bypass")
        assert info.value.error.code == types.INVALID_PARAMS
        assert_one_line(info.value.error.message.lower(), ["cursor"])


# ---------------------------------------------------------------------------
# Random JSON (hypothesis)
# ---------------------------------------------------------------------------


class AnsweringUpstream(Upstream):
    """Answers every request: a stream for streaming requests, a completion otherwise."""

    def _next_reply(self) -> Reply:
        with self._lock:
            body = self.requests[-1].body if self.requests else None
        if isinstance(body, dict) and body.get("stream"):
            return Reply.stream(["random ", "ok"])
        return Reply.text("random ok")


COMPLETE_ARGS = [
    "prompt", "messages", "system", "model", "max_tokens", "temperature", "tools", "response_format",
    "json_mode", "max_retries", "deadline_s",
]  # fmt: skip
LISTING_ARGS = ["error_type", "model", "since", "limit", "cursor"]
NESTED_KEYS = [
    "role", "content", "type", "text", "name", "description", "parameters", "properties", "required",
    "tool_calls", "tool_call_id", "id", "function", "arguments", "image_url", "url",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["user", "assistant", "system", "tool", "object", "text", MODEL, "2026-11-01T12:00:00Z"])
)
keys = st.text(max_size=12) | st.sampled_from(NESTED_KEYS + COMPLETE_ARGS + LISTING_ARGS)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


def arguments_for(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Random objects keyed by the real argument names and by random names."""
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=12), json_values, max_size=6)


# Mostly-valid calls as well, so that many get past validation to the upstream.
near_valid = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip)},
    optional={
        "system": st.text(max_size=20),
        "model": st.sampled_from([MODEL, "openai/other", "anthropic/claude"]),
        "max_tokens": st.integers(min_value=-2, max_value=CAP + 2),
        "temperature": st.floats(min_value=-1, max_value=3, allow_nan=False),
        "json_mode": st.booleans(),
        "max_retries": st.integers(min_value=-1, max_value=11),
        "deadline_s": st.floats(min_value=0, max_value=DEADLINE + 1, allow_nan=False),
        "tools": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["a", "b", "bad name"])}, optional={"parameters": json_values}
            ),
            max_size=2,
        ),
        "response_format": json_values,
    },
)

uris = (
    st.text(max_size=40)
    | st.builds(lambda s: DUMP_URI_PREFIX + s, st.text(alphabet=string.printable + "\x00é/%.", max_size=40))
    | st.just(INDEX_URI)
)

calls = st.one_of(
    st.tuples(st.sampled_from(["complete", "stream_complete"]), arguments_for(COMPLETE_ARGS) | near_valid),
    st.tuples(st.just("list_failed_requests"), arguments_for(LISTING_ARGS)),
    st.tuples(st.just("resources/read"), uris),
    st.tuples(st.just("resources/list"), st.none() | st.text(max_size=40)),
)

HANG_S = 20.0  # a call not answered in this long is a hang (litellm's slowest path is well under 1 s here)


async def answer(c: Client, kind: str, payload: Any) -> str:
    """Make one call; return how it was answered. Raises on a hang or a multi-line error."""
    with anyio.fail_after(HANG_S):
        try:
            if kind == "resources/read":
                await c.read_resource(payload, cache_mode="bypass")
                return "read"
            if kind == "resources/list":
                await c.list_resources(cursor=payload, cache_mode="bypass")
                return "listed"
            r = await c.call_tool(kind, payload)
        except MCPError as exc:
            assert "\n" not in exc.error.message, exc.error.message
            return "mcp-error"
    if r.is_error:
        text = text_of(r)
        assert "\n" not in text and TEST_KEY not in text, text
        assert "Traceback" not in text, text
        return "is-error"
    return "ok"


async def still_serving(c: Client) -> None:
    with anyio.fail_after(HANG_S):
        r = await c.call_tool("complete", {"prompt": "still there?"})
    assert not r.is_error and text_of(r) == "random ok", r


# A random deadline_s of a few microseconds cancels litellm between its creating a
# coroutine and awaiting it; litellm's, harmless (the call still ends as a timeout).
@pytest.mark.filterwarnings("ignore:coroutine 'OpenAIChatCompletion.*' was never awaited:RuntimeWarning")
def test_random_json_is_always_answered(mode: str, tmp_path: Path) -> None:
    from hive_mcp.provider import LiteLLMProvider

    outcomes: dict[str, int] = {}
    with AnsweringUpstream() as up, anyio.from_thread.start_blocking_portal() as portal:
        store = DumpStore(tmp_path / "dumps")
        provider = LiteLLMProvider(
            model=MODEL, api_key=TEST_KEY, api_base=up.base_url, retry=FAST_RETRY, dump_store=store
        )
        limits = Limits(allowed_models=["openai/*"], max_tokens=CAP, deadline_s=DEADLINE)
        server = mcp_server(provider, store, limits=limits)
        client = Client(server, raise_exceptions=True, mode=mode)
        with portal.wrap_async_context_manager(client) as c:

            @settings(
                max_examples=150,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(call=calls)
            def one_call(call: tuple[str, Any]) -> None:
                kind, payload = call
                how = portal.call(answer, c, kind, payload)
                outcomes[how] = outcomes.get(how, 0) + 1
                assert (limits.in_flight, limits.waiting) == (0, 0)

            one_call()
            portal.call(still_serving, c)
    # The strategies reach every kind of answer: refusals and calls that went through.
    assert {"is-error", "ok", "mcp-error"} <= set(outcomes), outcomes
    assert any(r.method == "POST" for r in up.requests)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_huge_max_tokens_without_a_cap_is_one_line_naming_it(
    provider: Any, store: DumpStore, upstream: Upstream, tool: str
) -> None:
    server = mcp_server(provider, store)  # no cap: nothing compares it before the model
    async with connect(server, "legacy") as c:
        r = await c.call_tool(tool, prompt_and(max_tokens=10**400))
    assert r.is_error and upstream.requests == []
    assert_one_line(text_of(r), ["max_tokens"])


@pytest.mark.parametrize(
    ("body", "limit", "deeper"),
    [
        (b"[" * 100 + b"]" * 100, 100, False),
        (b"[" * 101 + b"]" * 101, 100, True),
        (b'{"a": "[[[[[[", "b": [[]]}', 3, False),  # brackets in strings are text
        (b'{"a": "\\"[[[[", "b": [[[]]]}', 2, True),  # an escaped quote does not end the string
        (b'[{"a": [{}]}]', 3, True),
        (b"[" * 50_000 + b"]" * 50_000, 100, True),
    ],
)
def test_nesting_depth_is_counted_outside_strings(body: bytes, limit: int, deeper: bool) -> None:
    from hive_mcp.jsonrpc import nested_deeper_than

    assert nested_deeper_than(body, limit) is deeper
