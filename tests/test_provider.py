"""LiteLLMProvider through litellm's real HTTP path, against the scripted upstream: streaming, how a request is
shaped, the codex backend, usage and cost, hive's old litellm monkeypatches, credentials, deadlines and malformed
upstream output. Which failures it retries, and how, is test_provider_retries.py."""

from __future__ import annotations

import logging

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
    ToolCallDeltaEvent,
    ToolCallEvent,
)
from hive_mcp.provider.litellm import JSON_MODE_INSTRUCTION
from tests.conftest import DEADLINE_S, FAST_RETRY, TEST_KEY
from tests.provider_calls import USER, collect, only_dump
from harness.upstream import Reply, tool_call_delta


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


async def test_tool_call_pieces_are_told_as_written_and_a_stream_lost_after_them_alone_is_retried(
    provider, upstream
) -> None:
    """The pieces (what a call cut short owes) reach no caller, so a stream lost after them is tried again."""
    upstream.script(
        Reply.stream([tool_call_delta(0, id="call_a", name="weather", args='{"city": ')], drop_after=1),
        Reply.stream([tool_call_delta(0, id="call_b", name="weather", args='{"city": "Oslo"}')],
                     finish_reason="tool_calls"),
    )  # fmt: skip
    events = await collect(provider, tools=[Tool(name="weather")])
    assert [e.content for e in events if isinstance(e, ToolCallDeltaEvent)] == [
        'weather{"city": ', 'weather{"city": "Oslo"}'
    ]
    calls = [(e.tool_use_id, e.tool_input) for e in events if isinstance(e, ToolCallEvent)]
    assert calls == [("call_b", {"city": "Oslo"})] and isinstance(events[-1], FinishEvent)
    assert len(upstream.chat_requests()) == 2


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


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_upstream_reporting_a_cost_of_zero_is_priced_by_the_map(provider, upstream, stream: bool) -> None:
    """A proxy's `usage.cost: 0` is no price (README "Zero is not a price"): the result's cost is litellm's map's,
    as the ledger charges it."""
    import litellm

    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000, "cost": 0}
    upstream.script(Reply.stream(["Hello", " there"], usage=usage) if stream else Reply.text("Hello there", usage=usage))
    response = (await collect(provider))[-1].response if stream else await provider.acomplete(USER)
    price = litellm.model_cost["gpt-4o-mini"]
    expected = 1000 * price["input_cost_per_token"] + 1000 * price["output_cost_per_token"]
    assert response.cost_usd == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_upstream_reporting_a_cost_of_zero_is_priced_by_the_map_cache_reads_at_their_rate(
    provider, upstream, stream: bool
) -> None:
    """Priced again from the map, the cached prompt tokens cost `cache_read_input_token_cost`, as litellm prices a
    reply whose cost it works out itself."""
    import litellm

    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500, "cost": 0,
             "prompt_tokens_details": {"cached_tokens": 800}}  # fmt: skip
    upstream.script(Reply.stream(["Hello", " there"], usage=usage) if stream else Reply.text("Hello there", usage=usage))
    response = (await collect(provider))[-1].response if stream else await provider.acomplete(USER)
    assert response.cached_tokens == 800
    price = litellm.model_cost["gpt-4o-mini"]
    assert price["cache_read_input_token_cost"] < price["input_cost_per_token"]
    expected = (
        200 * price["input_cost_per_token"]
        + 800 * price["cache_read_input_token_cost"]
        + 500 * price["output_cost_per_token"]
    )
    assert response.cost_usd == pytest.approx(expected, rel=1e-9)


async def test_cost_is_zero_for_an_unknown_model(upstream) -> None:
    provider = LiteLLMProvider(model="openai/no-such-model-xyz", api_key=TEST_KEY, api_base=upstream.base_url)
    upstream.script(Reply.text("x", model="no-such-model-xyz"), Reply.stream(["y"], model="no-such-model-xyz"))
    assert (await provider.acomplete(USER)).cost_usd == 0.0
    finish = (await collect(provider))[-1]
    assert isinstance(finish, FinishEvent) and finish.response.cost_usd == 0.0


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
