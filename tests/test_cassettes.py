"""Every recorded provider reply in ../shared/cassettes, replayed through LiteLLMProvider.

Each recording is served byte for byte by harness/upstream.py at whatever path litellm asks
for, through litellm's real HTTP path with the provider's own litellm prefix, streamed when
the recording is a stream. What the test expects is read from the recorded body itself
(tests/cassettes.py): text, tool calls, usage, reasoning, refusals, filters, errors.

Where litellm itself cannot take a recording, the test pins hive-mcp's clean outcome
instead: one line, the right category, no traceback (LITELLM_LIMITS says which litellm
behaviour each one is). Marks of `xfail(strict=True)` name what issue 9 section 2 asks of
the provider that today's provider does not do yet; they come off when it does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.cassettes import CASSETTES, RETRYABLE, Expected, Route, expected, load, names, route, sse_data
from tests.provider_calls import USER
from harness.upstream import Reply, Upstream

if not CASSETTES.is_dir():
    pytest.skip(f"no recordings at {CASSETTES} (a clone outside the workspace)", allow_module_level=True)

from hive_mcp.dumps import DumpStore  # noqa: E402
from hive_mcp.provider import (  # noqa: E402
    FinishEvent,
    LiteLLMProvider,
    ProviderError,
    ReasoningDeltaEvent,
    StreamErrorEvent,
    TextDeltaEvent,
    ToolCallEvent,
)
from hive_mcp.provider.retry import RetryPolicy  # noqa: E402


@dataclass(frozen=True)
class Limit:
    """A recording litellm cannot take, and the category hive-mcp must then report."""

    why: str
    categories: frozenset[str] = frozenset({"bad_response"})


# Case ids: the recording's name, or name@prefix where it also goes through another route.
LITELLM_LIMITS: dict[str, Limit] = {
    # litellm's Groq transform reads `service_tier` from a ModelResponse that has no such
    # attribute: AttributeError "'ModelResponse' object has no attribute 'service_tier'",
    # which litellm wraps as APIConnectionError.
    "groq-nonstream-text-01": Limit("litellm raises AttributeError on Groq's service_tier"),
    # litellm always asks Gemini for `alt=sse` and reads SSE lines; this reply was recorded
    # without `alt=sse` and is one JSON array, in which litellm finds no chunk; it then
    # makes up a bare `stop` chunk, so the stream is indistinguishable from an empty one
    # and gets the empty-stream outcome (retried, then one clean line).
    "gemini-stream-json-array-01": Limit(
        "litellm reads a Gemini JSON-array stream as an empty stream", frozenset({"empty_stream"})
    ),
    # Recorded from OpenRouter at an api.openai.com URL. Through the `openai/` route,
    # litellm's stream wrapper raises "Stream ended before a finish_reason was received"
    # for a stream that ends cleanly without one (the `openrouter/` route accepts it).
    "openrouter-stream-tool-kimi-01@openai": Limit("litellm rejects a stream without a finish_reason"),
    # Groq's in-stream `event: error` carries code "tool_use_failed" and status_code 400;
    # litellm's Groq chunk parser passes that code as the HTTP status, whose int() raises
    # ValueError "invalid literal for int() with base 10: 'tool_use_failed'". The
    # provider's own 400 (bad_request) or litellm's parse failure (bad_response) are both
    # honest; `unknown` is not.
    "groq-stream-error-midstream-01": Limit(
        "litellm raises ValueError on Groq's error event", frozenset({"bad_request", "bad_response"})
    ),
}

# What today's provider does not do yet (issue 9 section 2 and CONTRACT.md).
XFAIL: dict[str, str] = {}
XFAIL_REASONING: dict[str, str] = {}
XFAIL_REASONING_TOKENS: dict[str, str] = {}


def _cases() -> list[tuple[str, str | None]]:
    return [(n, None) for n in names()] + [("openrouter-stream-tool-kimi-01", "openai")]


def _case_id(case: tuple[str, str | None]) -> str:
    name, prefix = case
    return f"{name}@{prefix}" if prefix else name


def _params(cases: list[tuple[str, str | None]], xfail: dict[str, str]) -> list[Any]:
    out = []
    for case in cases:
        case_id = _case_id(case)
        marks = [pytest.mark.xfail(strict=True, reason=xfail[case_id])] if case_id in xfail else []
        out.append(pytest.param(case, id=case_id, marks=marks))
    return out


# -- running one recording ----------------------------------------------------------------


@dataclass
class Outcome:
    recording: dict[str, Any]
    route: Route
    expected: Expected
    upstream: Upstream
    store: DumpStore
    response: Any = None  # LLMResponse, for a call that was not streamed
    events: list[Any] | None = None  # everything a stream yielded
    error: ProviderError | StreamErrorEvent | None = None

    @property
    def error_text(self) -> str:
        if isinstance(self.error, StreamErrorEvent):
            return self.error.error
        return str(self.error)

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else self.error.error_type

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events or [] if isinstance(e, kind)]


async def replay(case: tuple[str, str | None], tmp_path: Path, stream: bool | None = None) -> Outcome:
    """Serve the recording and make its call: streamed as it was recorded, unless `stream` says otherwise."""
    name, prefix = case
    recording = load(name)
    if stream is not None:
        recording["stream"] = stream
    with Upstream(default=Reply.recording(recording)) as upstream:
        where = route(recording, f"http://127.0.0.1:{upstream.port}", prefix)
        store = DumpStore(tmp_path / "dumps")
        # time_scale=0: the real retry rules, none of their waiting.
        provider = LiteLLMProvider(
            model=where.model, api_key="test-key", api_base=where.api_base,
            retry=RetryPolicy(time_scale=0), dump_store=store,
        )
        outcome = Outcome(recording, where, expected(recording), upstream, store)
        call = {"messages": USER, "model": where.model, "api_base": where.api_base, **where.extra}
        if recording["stream"]:
            outcome.events = [event async for event in provider.stream(**call)]
            last = outcome.events[-1]
            if isinstance(last, StreamErrorEvent):
                outcome.error = last
        else:
            try:
                outcome.response = await provider.acomplete(**call)
            except ProviderError as err:
                outcome.error = err
    return outcome


def _reasoning_text(event: Any) -> str:
    """CONTRACT.md spells the field `text`; provider/events.py spells it `content` today."""
    return getattr(event, "text", None) or getattr(event, "content", "")


def _one_line_error(outcome: Outcome) -> None:
    text = outcome.error_text
    assert "\n" not in text and "\r" not in text, text
    assert "Traceback" not in text, text
    assert outcome.error.model == outcome.route.model


def _usage(outcome: Outcome, got: Any) -> None:
    """Input and output tokens as the recording reports them, and `estimated` only where it reports none.

    litellm's counts are what hive-mcp passes on: Anthropic's input tokens include cache
    reads and writes, Gemini's output tokens include thoughts, OpenAI's output tokens
    include reasoning (tests/cassettes.py adds them up the same way). Groq's stream
    reports its usage in `x_groq.usage` alone, which litellm ignores: hive-mcp reads it.
    """
    exp = outcome.expected
    if exp.input_tokens is not None:
        assert (got.input_tokens, got.output_tokens) == (exp.input_tokens, exp.output_tokens)
        if exp.cached_tokens is not None:
            assert got.cached_tokens == exp.cached_tokens
        assert not got.estimated, "the provider's own usage is not an estimate"
    else:
        # No usage recorded: litellm estimates from the text, and the reply says so.
        assert got.input_tokens > 0 and got.output_tokens > 0
        assert got.estimated, "litellm's count from the text passed as the provider's"


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names())
def test_replay_serves_the_recording_as_recorded(name: str) -> None:
    """The replay itself: recorded status, content type, rate-limit headers and body bytes,
    at whatever path is asked for, and the path asked for is kept for the test to check."""
    recording = load(name)
    with Upstream(default=Reply.recording(recording)) as upstream:
        reply = httpx.post(f"http://127.0.0.1:{upstream.port}/any/path?x=1", json={"model": "m"})
    assert reply.status_code == recording["status"]
    assert reply.content == recording["response_text"].encode()
    for key, value in recording["response_headers"].items():
        assert reply.headers[key] == value
    if not recording["response_headers"]:  # none recorded: SSE for a stream that answered, else JSON
        streamed = recording["stream"] and recording["status"] == 200
        assert reply.headers["content-type"] == ("text/event-stream" if streamed else "application/json")
    assert [r.path for r in upstream.requests] == ["/any/path?x=1"]


@pytest.mark.parametrize("case", _params(_cases(), XFAIL))
async def test_recording(case: tuple[str, str | None], tmp_path: Path) -> None:
    outcome = await replay(case, tmp_path)
    rec, exp, case_id = outcome.recording, outcome.expected, _case_id(case)

    # litellm asked for the recorded path, with the recorded model name.
    requests = outcome.upstream.chat_requests()
    asked = urlparse(requests[0].path)
    recorded = urlparse(rec["path"])
    assert asked.path == recorded.path
    for key in ("api-version", "alt"):
        if key in parse_qs(recorded.query):
            assert parse_qs(asked.query).get(key) == parse_qs(recorded.query)[key]
    if outcome.route.sent_model is not None:
        assert requests[0].body["model"] == outcome.route.sent_model

    limit = LITELLM_LIMITS.get(case_id)
    if limit is not None or exp.error_status is not None or exp.content_filter:
        if limit is not None:
            categories = limit.categories
        elif exp.content_filter:
            categories = frozenset({"content_policy"})
        else:
            categories = frozenset({exp.category})
        assert outcome.error is not None, outcome.response or outcome.events
        assert outcome.error_type in categories, f"{limit.why if limit else rec['name']}: {outcome.error_text}"
        _one_line_error(outcome)
        if exp.error_message and limit is None:
            assert " ".join(exp.error_message.split())[:40] in outcome.error_text
        for category in exp.filter_categories:  # issue 9: the message names what the filter caught
            assert category in outcome.error_text
        if outcome.error_type not in RETRYABLE:
            assert len(requests) == 1, "a permanent failure was retried"
        assert len(outcome.store.list().items) == 1, "a failed call writes one dump"
        if outcome.events is not None:
            # Text that went out before the failure is the recorded text, once (none of it
            # where litellm could not read the stream at all).
            sent = "".join(e.content for e in outcome.of(TextDeltaEvent))
            assert sent == ("" if outcome.error_type == "empty_stream" else exp.text)
        return

    assert outcome.error is None, outcome.error_text
    assert len(requests) == 1
    assert outcome.store.list().items == [], "a first-time success writes no dump"
    if outcome.response is not None:
        response = outcome.response
        if exp.refusal:
            assert (response.content, response.stop_reason) == (exp.refusal, "refusal")
        else:
            assert response.content == exp.text
        assert [(tc.name, tc.input) for tc in response.tool_calls] == exp.tool_calls
        assert response.attempts == 1 and response.dump_id is None
        _usage(outcome, response)
        return

    events = outcome.events or []
    assert isinstance(events[-1], FinishEvent)
    assert sum(isinstance(e, (FinishEvent, StreamErrorEvent)) for e in events) == 1
    deltas = [e.content for e in outcome.of(TextDeltaEvent)]
    joined = "".join(deltas)
    # A streamed refusal goes out as text like any other.
    assert joined == exp.text + exp.refusal
    assert [(e.tool_name, e.tool_input) for e in outcome.of(ToolCallEvent)] == exp.tool_calls
    finish = events[-1]
    if exp.refusal:
        assert finish.response.stop_reason == "refusal"
    assert finish.response.attempts == 1 and finish.response.dump_id is None
    _usage(outcome, finish.response)


_ERROR_LINE = re.compile(r" after \d+ attempts?: (.*)$")
XFAIL_MESSAGE: dict[str, str] = {}


def _with(predicate: Any) -> list[tuple[str, str | None]]:
    return [(n, None) for n in names() if n not in LITELLM_LIMITS and predicate(expected(load(n)))]


@pytest.mark.parametrize("case", _params(_with(lambda e: bool(e.reasoning)), XFAIL_REASONING))
async def test_reasoning_text(case: tuple[str, str | None], tmp_path: Path) -> None:
    """Reasoning and thinking text comes back as `reasoning` (streamed: ReasoningDeltaEvent)."""
    outcome = await replay(case, tmp_path)
    if outcome.events is None:
        assert outcome.response is not None, outcome.error_text
        assert outcome.response.reasoning == outcome.expected.reasoning
    else:
        assert "".join(_reasoning_text(e) for e in outcome.of(ReasoningDeltaEvent)) == outcome.expected.reasoning


@pytest.mark.parametrize(
    "case",
    _params(
        _with(lambda e: e.reasoning_tokens > 0 and e.error_status is None and not e.content_filter),
        XFAIL_REASONING_TOKENS,
    ),
)
async def test_reasoning_tokens(case: tuple[str, str | None], tmp_path: Path) -> None:
    """Reasoning tokens, where the recording reports them, as `reasoning_tokens`."""
    outcome = await replay(case, tmp_path)
    got = outcome.response if outcome.events is None else outcome.events[-1].response
    assert got.reasoning_tokens == outcome.expected.reasoning_tokens


@pytest.mark.parametrize("case", _params(_with(lambda e: bool(e.error_message)), XFAIL_MESSAGE))
async def test_error_message_is_the_providers_own(case: tuple[str, str | None], tmp_path: Path) -> None:
    """The failure's line ends with the provider's own message (whitespace collapsed, at
    most shortened with an ellipsis): not litellm's wrapping, not the raw body."""
    outcome = await replay(case, tmp_path)
    match = _ERROR_LINE.search(outcome.error_text)
    assert match, outcome.error_text
    got, want = match.group(1).strip(), " ".join(outcome.expected.error_message.split())
    assert got == want or (got.endswith("…") and want.startswith(got[:-1])), got


def _errors() -> list[tuple[str, str | None]]:
    return [(n, None) for n in names() if n not in LITELLM_LIMITS and load(n)["status"] >= 400]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", _params(_errors(), {}))
async def test_an_error_status_fails_alike_streamed_or_not(
    case: tuple[str, str | None], stream: bool, tmp_path: Path
) -> None:
    """An error status is the same failure whether the call streams or not: its category by the status, and one
    line ending with the provider's own message (never litellm's wrapping, never the raw body)."""
    outcome = await replay(case, tmp_path, stream)
    assert outcome.error_type == outcome.expected.category, outcome.error_text
    _one_line_error(outcome)
    match = _ERROR_LINE.search(outcome.error_text)
    assert match, outcome.error_text
    got, want = match.group(1).strip(), " ".join(outcome.expected.error_message.split())
    assert got == want or (got.endswith("…") and want.startswith(got[:-1])), got


def _first_model(name: str) -> str | None:
    """The model the first chunk of a recorded OpenAI-format stream names: the one that answered (an Azure
    deployment's chunks name the dated model; litellm's own last chunk, the name asked for)."""
    rec = load(name)
    if not rec["stream"] or rec["status"] != 200 or not rec["response_text"].lstrip().startswith("data:"):
        return None
    if rec["provider"] == "openai":  # litellm names each of OpenAI's own chunks with the name asked for
        return None
    objects = [json.loads(d) for _, d in sse_data(rec["response_text"]) if d.strip() != "[DONE]"]
    return next((o["model"] for o in objects if isinstance(o, dict) and o.get("model")), None)


@pytest.mark.parametrize("case", _params([(n, None) for n in names() if n not in LITELLM_LIMITS and _first_model(n)], {}))
async def test_a_stream_names_the_model_that_answered(case: tuple[str, str | None], tmp_path: Path) -> None:
    """A stream's `model` is the first one its chunks name, not the name litellm puts on the chunk it adds."""
    outcome = await replay(case, tmp_path)
    finish = (outcome.events or [None])[-1]
    assert isinstance(finish, FinishEvent), outcome.error_text
    assert finish.response.model == _first_model(case[0])
