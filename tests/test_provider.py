"""LiteLLMProvider through litellm's real HTTP path, against the scripted upstream."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.provider import (
    FinishEvent,
    LiteLLMProvider,
    ProviderError,
    ReasoningDeltaEvent,
    StreamErrorEvent,
    TextDeltaEvent,
    Tool,
    ToolCallEvent,
)
from hive_mcp.provider.litellm import JSON_MODE_INSTRUCTION
from tests.conftest import DEADLINE_S, FAST_RETRY, TEST_KEY
from harness.upstream import Reply, tool_call_delta

USER = [{"role": "user", "content": "hi"}]


async def collect(provider: LiteLLMProvider, messages: list[dict[str, Any]] = USER, **kw: Any) -> list[Any]:
    return [event async for event in provider.stream(messages, **kw)]


def only_dump(store: DumpStore):
    page = store.list()
    assert len(page.items) == 1, page.items
    return store.read(page.items[0].id)


# -- a. rate limits ---------------------------------------------------------------


async def test_rate_limit_is_retried_honouring_each_retry_after_form(provider, upstream, store) -> None:
    upstream.script(
        Reply.error(429, headers={"retry-after-ms": "1500"}),
        Reply.error(429, headers={"retry-after": "3"}),
        Reply.error(429, headers={"retry-after": "garbage"}),
        Reply.text("finally"),
    )
    response = await provider.acomplete(USER)
    assert response.content == "finally"
    assert response.attempts == 4
    assert len(upstream.chat_requests()) == 4
    dump = only_dump(store)
    assert dump.outcome == "recovered" and dump.error_type == "rate_limit"
    # ms header, seconds header, then backoff for attempt index 2: 2 s x 2^2
    assert [a.delay_s for a in dump.attempts] == [1.5, 3.0, 8.0]
    assert response.dump_id == dump.id


async def test_rate_limit_gives_up_after_max_retries(provider, upstream, store) -> None:
    upstream.script(*[Reply.error(429) for _ in range(3)])
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, max_retries=2)
    assert len(upstream.chat_requests()) == 3
    assert info.value.error_type == "rate_limit" and info.value.attempts == 3
    assert only_dump(store).outcome == "gave_up"


async def test_default_max_retries_is_ten(provider, upstream) -> None:
    upstream.script(*[Reply.error(429) for _ in range(12)])
    with pytest.raises(ProviderError):
        await provider.acomplete(USER)
    assert len(upstream.chat_requests()) == 11


async def test_anthropic_retry_after_comes_from_litellm_response_headers(upstream, store) -> None:
    provider = LiteLLMProvider(
        model="anthropic/claude-test", api_key="sk-ant-api-test", api_base=upstream.anthropic_base,
        retry=FAST_RETRY, dump_store=store,
    )
    upstream.script(Reply.error(429, headers={"retry-after": "5"}), Reply.anthropic("hello"))
    response = await provider.acomplete(USER)
    assert response.content == "hello"
    assert [a.delay_s for a in only_dump(store).attempts] == [5.0]


# -- b. transient and permanent errors --------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_transient_status_is_retried(provider, upstream, store, status: int) -> None:
    upstream.script(Reply.error(status), Reply.text("recovered"))
    response = await provider.acomplete(USER)
    assert response.content == "recovered" and len(upstream.chat_requests()) == 2
    dump = only_dump(store)
    assert dump.error_type == "transient" and dump.attempts[0].status == status


async def test_connection_refused_is_retried_then_reported(store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    provider = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=f"http://127.0.0.1:{port}/v1",
        retry=FAST_RETRY, dump_store=store,
    )
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, max_retries=2)
    assert info.value.attempts == 3 and info.value.retryable
    assert info.value.error_type == "connection"
    assert only_dump(store).outcome == "gave_up"


async def test_read_timeout_is_retried(provider, upstream, store) -> None:
    upstream.script(Reply.hang(), Reply.text("after timeout"))
    response = await provider.acomplete(USER, timeout=0.5)
    assert response.content == "after timeout" and response.attempts == 2
    assert only_dump(store).error_type == "timeout"


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (Reply.error(401, f"Incorrect API key provided: {TEST_KEY}", code="invalid_api_key"), "auth"),
        (Reply.error(403, "forbidden"), "auth"),
        (Reply.error(400, "bad field"), "bad_request"),
        (
            Reply.error(400, "This model's maximum context length is 8 tokens", code="context_length_exceeded"),
            "context_window",
        ),
        (Reply.error(404, "The model does not exist", code="model_not_found"), "not_found"),
        (
            Reply.error(400, "Your request was rejected by the safety system", code="content_policy_violation"),
            "content_policy",
        ),
    ],
)
async def test_permanent_errors_are_not_retried(provider, upstream, store, dump_dir: Path, reply, error_type) -> None:
    upstream.script(reply, Reply.text("must not be reached"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    err = info.value
    assert len(upstream.chat_requests()) == 1
    assert err.error_type == error_type and err.attempts == 1
    line = str(err)
    assert "\n" not in line and error_type in line and "openai/gpt-4o-mini" in line and "1 attempt" in line
    assert TEST_KEY not in line and "{" not in line
    assert only_dump(store).outcome == "not_retried"
    for path in dump_dir.iterdir():
        assert TEST_KEY not in path.read_text()


def test_sync_complete_retries_and_dumps_like_async(provider, upstream, store) -> None:
    upstream.script(Reply.error(503), Reply.text("sync ok"))
    response = provider.complete(USER)
    assert response.content == "sync ok" and response.attempts == 2
    assert only_dump(store).outcome == "recovered"
    upstream.script(Reply.error(401))
    with pytest.raises(ProviderError) as info:
        provider.complete(USER)
    assert info.value.error_type == "auth" and info.value.dump_id is not None


# -- c. empty replies ---------------------------------------------------------------


async def test_empty_reply_is_retried_with_backoff(provider, upstream, store) -> None:
    upstream.script(Reply.text(""), Reply.text(None), Reply.text("words"))
    response = await provider.acomplete(USER)
    assert response.content == "words" and len(upstream.chat_requests()) == 3
    dump = only_dump(store)
    assert dump.error_type == "empty_response" and dump.outcome == "recovered"
    assert [a.delay_s for a in dump.attempts] == [2.0, 4.0]


async def test_empty_reply_after_assistant_turn_is_expected(provider, upstream, store) -> None:
    upstream.script(Reply.text(""))
    messages = [*USER, {"role": "assistant", "content": "partial"}]
    response = await provider.acomplete(messages)
    assert response.content == "" and len(upstream.chat_requests()) == 1
    assert store.count() == 0


async def test_empty_reply_with_length_finish_is_returned_and_logged(provider, upstream, caplog) -> None:
    upstream.script(Reply.text("", finish_reason="length"))
    with caplog.at_level(logging.WARNING, logger="hive_mcp.provider"):
        response = await provider.acomplete(USER, max_tokens=5)
    assert response.content == "" and response.stop_reason == "length"
    assert len(upstream.chat_requests()) == 1
    assert any("max_tokens" in r.getMessage() for r in caplog.records)


async def test_empty_stream_retries_three_times_one_second_apart(provider, upstream, store) -> None:
    upstream.script(*[Reply.stream([]) for _ in range(4)], Reply.stream(["never"]))
    events = await collect(provider)
    assert isinstance(events[-1], StreamErrorEvent) and events[-1].error_type == "empty_stream"
    assert len(upstream.chat_requests()) == 4
    dump = only_dump(store)
    assert [a.delay_s for a in dump.attempts[:3]] == [1.0, 1.0, 1.0] and dump.stream


async def test_empty_stream_recovers(provider, upstream) -> None:
    upstream.script(Reply.stream([]), Reply.stream(["ok"]))
    events = await collect(provider)
    assert [e.content for e in events if isinstance(e, TextDeltaEvent)] == ["ok"]
    assert isinstance(events[-1], FinishEvent) and events[-1].response.attempts == 2


async def test_empty_stream_after_tool_result_is_expected(provider, upstream) -> None:
    upstream.script(Reply.stream([]))
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    events = await collect(provider, messages)
    assert isinstance(events[-1], FinishEvent) and len(upstream.chat_requests()) == 1


# -- d. streaming -------------------------------------------------------------------


async def test_text_deltas_are_yielded_as_they_arrive(provider, upstream) -> None:
    upstream.script(Reply.stream(["one ", "two ", "three"], hold_after=1))
    agen = provider.stream(USER)
    first = await agen.__anext__()
    # The upstream is holding the rest of the stream: this delta came before it.
    assert isinstance(first, TextDeltaEvent) and first.content == "one "
    upstream.release()
    rest = [event async for event in agen]
    deltas = [first.content] + [e.content for e in rest if isinstance(e, TextDeltaEvent)]
    assert deltas == ["one ", "two ", "three"]
    assert isinstance(rest[-1], FinishEvent) and rest[-1].response.output_tokens == 7


async def test_parallel_tool_calls_stay_apart_when_index_repeats(provider, upstream) -> None:
    upstream.script(
        Reply.stream(
            [
                tool_call_delta(0, id="call_a", name="weather", args='{"city": '),
                tool_call_delta(0, args='"Oslo"}'),
                tool_call_delta(0, id="call_b", name="time", args='{"tz": "UTC"}'),
                tool_call_delta(0, id="call_c", name="broken", args='{"unterminated'),
            ],
            finish_reason="tool_calls",
        )
    )
    events = await collect(provider, tools=[Tool(name="weather"), Tool(name="time"), Tool(name="broken")])
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.tool_use_id, c.tool_name, c.tool_input) for c in calls] == [
        ("call_a", "weather", {"city": "Oslo"}),
        ("call_b", "time", {"tz": "UTC"}),
        ("call_c", "broken", {"_raw": '{"unterminated'}),
    ]
    assert upstream.chat_requests()[0].body["tools"][0]["function"]["name"] == "weather"


async def test_reasoning_and_tool_arguments_that_are_not_valid_unicode_arrive_mended(provider, upstream) -> None:
    """Half of a surrogate pair (JSON's `\\ud83d`) in reasoning split between chunks, and alone in a tool call's
    arguments, streamed or whole: the pair joined, a half alone U+FFFD, nothing that cannot be encoded."""
    args = '{"mood": "\\ud83d", "\\udc00": ["ok \\udc00"]}'
    mended = {"mood": "\ufffd", "\ufffd": ["ok \ufffd"]}
    upstream.script(
        Reply.stream(
            [
                {"reasoning_content": "think \ud83d", "content": None},
                {"reasoning_content": "\ude00 then \ud83d", "content": None},
                tool_call_delta(0, id="call_a", name="weather", args=args[:12]),
                tool_call_delta(0, args=args[12:]),
            ],
            finish_reason="tool_calls",
        ),
        Reply.text(None, tool_calls=[{"id": "c1", "name": "weather", "arguments": args}]),
    )
    events = await collect(provider, tools=[Tool(name="weather")])
    reasoning = "".join(e.content for e in events if isinstance(e, ReasoningDeltaEvent))
    assert reasoning == events[-1].response.reasoning == "think \U0001f600 then \ufffd"
    assert [e.tool_input for e in events if isinstance(e, ToolCallEvent)] == [mended]
    whole = await provider.acomplete(USER, tools=[Tool(name="weather")])
    assert whole.tool_calls[0].input == mended


async def test_usage_comes_from_the_last_chunk(provider, upstream) -> None:
    usage = {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168,
             "prompt_tokens_details": {"cached_tokens": 100}}
    upstream.script(Reply.stream(["x"], usage=usage))
    finish = (await collect(provider))[-1]
    assert isinstance(finish, FinishEvent)
    assert (finish.response.input_tokens, finish.response.output_tokens, finish.response.cached_tokens) == (123, 45, 100)


async def test_failure_after_text_ends_the_stream_without_repeating_text(provider, upstream, store) -> None:
    upstream.script(Reply.stream(["Hello ", "world", " and more"], drop_after=2), Reply.stream(["Hello again"]))
    events = await collect(provider)
    texts = [e.content for e in events if isinstance(e, TextDeltaEvent)]
    assert texts == ["Hello ", "world"]
    assert isinstance(events[-1], StreamErrorEvent) and events[-1].recoverable
    assert len(upstream.chat_requests()) == 1
    dump = only_dump(store)
    assert events[-1].dump_id == dump.id and dump.outcome == "not_retried"


async def test_failure_before_any_text_is_retried(provider, upstream) -> None:
    upstream.script(Reply.error(503), Reply.stream(["Hel"], drop_after=0), Reply.stream(["Hello"]))
    events = await collect(provider)
    assert [e.content for e in events if isinstance(e, TextDeltaEvent)] == ["Hello"]
    assert isinstance(events[-1], FinishEvent) and events[-1].response.attempts == 3


async def test_permanent_stream_error_is_an_event_not_an_exception(provider, upstream) -> None:
    upstream.script(Reply.error(401, f"bad key {TEST_KEY}"))
    events = await collect(provider)
    assert len(events) == 1 and isinstance(events[0], StreamErrorEvent)
    assert events[0].error_type == "auth" and not events[0].recoverable and events[0].upstream_status == 401
    assert TEST_KEY not in events[0].error


# -- e, f. request shaping ------------------------------------------------------------


async def test_ghost_assistant_messages_are_dropped(provider, upstream) -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "b"},
    ]
    await provider.acomplete(messages)
    assert [m["role"] for m in upstream.chat_requests()[0].messages] == ["user", "user"]


async def test_json_mode_appends_to_system_and_passes_response_format(provider, upstream) -> None:
    fmt = {"type": "json_object"}
    await provider.acomplete(USER, system="Be terse.", json_mode=True, response_format=fmt)
    await provider.acomplete(USER, json_mode=True)
    with_system, without = upstream.chat_requests()
    assert with_system.messages[0] == {"role": "system", "content": f"Be terse.\n\n{JSON_MODE_INSTRUCTION}"}
    assert with_system.body["response_format"] == fmt
    assert without.messages[0] == {"role": "system", "content": JSON_MODE_INSTRUCTION}


# -- g. codex backend --------------------------------------------------------------


async def test_codex_backend_always_streams_with_store_false(upstream, store) -> None:
    provider = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY,  # a chat model: litellm sends codex models to /responses
        api_base=f"http://127.0.0.1:{upstream.port}/chatgpt.com/backend-api/codex",
        retry=FAST_RETRY, dump_store=store,
    )
    upstream.script(Reply.stream(["co", "dex"]))
    response = await provider.acomplete(USER, max_tokens=99)
    assert response.content == "codex"
    body = upstream.chat_requests()[0].body
    assert body["stream"] is True and body["store"] is False
    assert "max_tokens" not in body and "stream_options" not in body
    assert body["messages"][0]["role"] == "system"


# -- h. usage and cost -------------------------------------------------------------


async def test_usage_and_cost_for_a_known_model(provider, upstream) -> None:
    import litellm

    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 200}}
    upstream.script(Reply.text("x", usage=usage))
    response = await provider.acomplete(USER)
    assert (response.input_tokens, response.output_tokens, response.cached_tokens) == (1000, 500, 200)
    assert response.cost_usd > 0
    # From litellm's own price map: uncached input, cache reads at their rate, output.
    price = litellm.model_cost["gpt-4o-mini"]
    expected = (
        800 * price["input_cost_per_token"]
        + 200 * price["cache_read_input_token_cost"]
        + 500 * price["output_cost_per_token"]
    )
    assert response.cost_usd == pytest.approx(expected, rel=1e-9)


async def test_cost_is_zero_for_an_unknown_model(upstream) -> None:
    provider = LiteLLMProvider(model="openai/no-such-model-xyz", api_key=TEST_KEY, api_base=upstream.base_url)
    upstream.script(Reply.text("x", model="no-such-model-xyz"), Reply.stream(["y"], model="no-such-model-xyz"))
    assert (await provider.acomplete(USER)).cost_usd == 0.0
    finish = (await collect(provider))[-1]
    assert isinstance(finish, FinishEvent) and finish.response.cost_usd == 0.0


# -- i. the event loop stays free ---------------------------------------------------


async def test_retry_waits_do_not_block_the_event_loop(upstream, store, caplog) -> None:
    slow = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url,
        retry=FAST_RETRY.__class__(time_scale=1.0), dump_store=store,
    )
    upstream.script(Reply.error(429, headers={"retry-after": "60"}), Reply.text("never reached"))
    finished = anyio.Event()
    seen: list[tuple[int, bool]] = []

    async def call() -> None:
        await slow.acomplete(USER)  # sleeps 60 s after the 429, unless cancelled
        finished.set()

    def waiting() -> bool:  # the provider logs the retry just before it starts waiting
        return any("retrying in 60.00s" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="hive_mcp.provider"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            # This task runs while the call waits out its retry: the loop is free. (A blocking
            # sleep would hold it for the whole minute, and this bounded wait would fail.)
            with anyio.fail_after(10):
                while not waiting():
                    await anyio.sleep(0.01)
            seen.append((len(upstream.chat_requests()), finished.is_set()))
            tg.cancel_scope.cancel()
    assert seen == [(1, False)]


# -- j. regressions for hive's old litellm monkeypatches ----------------------------


async def test_anthropic_oauth_token_goes_as_bearer_without_x_api_key(upstream) -> None:
    token = "sk-ant-oat01-test-oauth-token"
    provider = LiteLLMProvider(model="anthropic/claude-test", api_key=token, api_base=upstream.anthropic_base)
    upstream.script(Reply.anthropic("hi"))
    await provider.acomplete(USER)
    headers = upstream.chat_requests()[0].headers
    assert headers["authorization"] == f"Bearer {token}"
    assert "x-api-key" not in headers


async def test_metadata_none_surfaces_the_upstream_error(provider, upstream) -> None:
    upstream.script(Reply.error(400, "the real upstream complaint"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, metadata=None)
    assert "the real upstream complaint" in str(info.value)
    assert info.value.error_type == "bad_request"


# -- credentials -------------------------------------------------------------------


async def test_missing_key_names_the_variable_and_makes_no_request(upstream, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_base=upstream.base_url)
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    assert "OPENAI_API_KEY" in str(info.value) and info.value.error_type == "auth"
    events = await collect(provider)
    assert isinstance(events[0], StreamErrorEvent) and "OPENAI_API_KEY" in events[0].error
    assert upstream.chat_requests() == []


async def test_two_hundred_concurrent_failing_calls_write_two_hundred_dumps(upstream, dump_dir) -> None:
    store = DumpStore(dump_dir, max_count=1000)
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url,
                               dump_store=store)
    upstream.script(*[Reply.error(400) for _ in range(200)])
    failures = 0

    async def one() -> None:
        nonlocal failures
        try:
            await provider.acomplete(USER)
        except ProviderError:
            failures += 1

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(one)
    assert failures == 200 and store.count() == 200



# -- deadlines and malformed upstream output ------------------------------------------


async def test_deadline_ends_a_slow_call_with_a_timeout_error_and_a_dump(warm, upstream, store) -> None:
    upstream.script(Reply.hang())
    with pytest.raises(ProviderError) as info:
        await warm.acomplete(USER, deadline=DEADLINE_S)
    assert upstream.request_seen.is_set(), "the request never reached the upstream: the deadline ran out first"
    assert info.value.error_type == "timeout" and f"deadline of {DEADLINE_S:g}s" in str(info.value)
    assert only_dump(store).error_type == "timeout"
    assert upstream.client_gone.wait(5)  # the abandoned request's connection was closed


async def test_deadline_ends_a_stalled_stream_after_its_text(warm, upstream, store) -> None:
    upstream.script(Reply.stream(["partial ", "never"], hold_after=1))
    events = await collect(warm, deadline=DEADLINE_S)
    assert upstream.request_seen.is_set(), "the request never reached the upstream: the deadline ran out first"
    assert [e.content for e in events if isinstance(e, TextDeltaEvent)] == ["partial "]
    assert isinstance(events[-1], StreamErrorEvent) and events[-1].error_type == "timeout"
    assert events[-1].dump_id == only_dump(store).id


async def test_a_call_cannot_extend_the_configured_deadline(upstream) -> None:
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url,
                               deadline_s=DEADLINE_S)
    provider.warm_up()
    upstream.script(Reply.hang())
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, deadline=3600)
    assert upstream.request_seen.is_set(), "the request never reached the upstream: the deadline ran out first"
    assert f"deadline of {DEADLINE_S:g}s" in str(info.value)


async def test_malformed_sse_line_gives_one_clear_outcome(provider, upstream, store) -> None:
    upstream.script(Reply.stream(["good ", b"data: {not json\n\n", "after"]), Reply.stream(["unused"]))
    events = await collect(provider)
    assert [e.content for e in events if isinstance(e, TextDeltaEvent)] == ["good "]
    assert isinstance(events[-1], StreamErrorEvent) and "\n" not in events[-1].error
    assert events[-1].dump_id == only_dump(store).id
    assert len(upstream.chat_requests()) == 1  # text was out: never retried


async def test_truncated_tool_call_json_is_kept_raw(provider, upstream) -> None:
    upstream.script(Reply.text(None, tool_calls=[{"id": "c1", "name": "f", "arguments": '{"a": [1, 2'}]))
    response = await provider.acomplete(USER, tools=[Tool(name="f")])
    assert response.tool_calls[0].input == {"_raw": '{"a": [1, 2'}


async def test_a_key_echoed_by_the_upstream_reaches_no_log(provider, upstream, caplog) -> None:
    upstream.script(Reply.error(503, f"upstream saw key {TEST_KEY}"), Reply.error(401, f"bad key {TEST_KEY}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError):
        await provider.acomplete(USER)
    assert caplog.records and TEST_KEY not in caplog.text
