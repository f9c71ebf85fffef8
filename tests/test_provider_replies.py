"""Replies as the provider meant them: refusals, content filters, reasoning, and litellm's own
parse failures, each in the shape a real provider sends, through litellm's real HTTP path."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.provider import (
    FinishEvent,
    LiteLLMProvider,
    ProviderError,
    ReasoningDeltaEvent,
    StreamErrorEvent,
    TextDeltaEvent,
)
from tests.clients import mcp_server
from tests.conftest import FAST_RETRY
from tests.provider_calls import USER
from harness.shapes import (
    anthropic_reply,
    anthropic_stream,
    azure_filtered_reply,
    gemini_reply,
    no_message_reply,
    reasoning_reply,
    refusal_reply,
    streamed_reasoning,
    streamed_refusal,
)
from harness.upstream import Reply, Upstream

SORRY = "I'm sorry, but I can't help with that."


async def collect(provider: LiteLLMProvider, **kw: Any) -> list[Any]:
    return [event async for event in provider.stream(USER, **kw)]


def texts(events: list[Any], kind: type = TextDeltaEvent) -> str:
    return "".join(e.content for e in events if isinstance(e, kind))


@pytest.fixture
def anthropic(upstream: Upstream, store: DumpStore) -> LiteLLMProvider:
    return LiteLLMProvider(
        model="anthropic/claude-test", api_key="sk-ant-api-test", api_base=upstream.anthropic_base,
        retry=FAST_RETRY, dump_store=store,
    )


def assert_one_line(err: ProviderError | StreamErrorEvent) -> str:
    line = str(err) if isinstance(err, ProviderError) else err.error
    assert "\n" not in line and "Traceback" not in line and "received_args" not in line and "{" not in line, line
    return line


# -- refusals: an answer, never retried, no dump ----------------------------------------


async def test_openai_refusal_is_the_answer(provider, upstream, store) -> None:
    upstream.script(refusal_reply(SORRY), Reply.text("must not be reached"))
    response = await provider.acomplete(USER)
    assert (response.content, response.stop_reason, response.attempts) == (SORRY, "refusal", 1)
    assert len(upstream.chat_requests()) == 1 and store.count() == 0


async def test_streamed_refusal_is_text_and_the_answer(provider, upstream, store) -> None:
    upstream.script(streamed_refusal("I'm sorry, ", "but I can't ", "help with that."), Reply.stream(["never"]))
    events = await collect(provider)
    assert texts(events) == SORRY
    finish = events[-1]
    assert isinstance(finish, FinishEvent) and finish.response.stop_reason == "refusal" and finish.response.attempts == 1
    assert len(upstream.chat_requests()) == 1 and store.count() == 0


async def test_anthropic_refusal_keeps_its_text(anthropic, upstream, store) -> None:
    upstream.script(anthropic_reply([{"type": "text", "text": "I can't help"}], stop_reason="refusal"))
    response = await anthropic.acomplete(USER)
    assert (response.content, response.stop_reason) == ("I can't help", "refusal")
    assert len(upstream.chat_requests()) == 1 and store.count() == 0


async def test_anthropic_refusal_with_only_an_explanation(anthropic, upstream, store) -> None:
    upstream.script(
        anthropic_reply([], stop_reason="refusal", stop_details={"type": "refusal", "explanation": "Policy says no."}),
        Reply.anthropic("must not be reached"),
    )
    response = await anthropic.acomplete(USER)
    assert (response.content, response.stop_reason) == ("Policy says no.", "refusal")
    assert len(upstream.chat_requests()) == 1 and store.count() == 0


async def test_anthropic_streamed_refusal(anthropic, upstream, store) -> None:
    upstream.script(anthropic_stream("I can't help", stop_reason="refusal"))
    events = await collect(anthropic)
    assert texts(events) == "I can't help"
    assert isinstance(events[-1], FinishEvent) and events[-1].response.stop_reason == "refusal"
    assert store.count() == 0


# -- content filters: content_policy, not retried, one dump, the categories named -----------


async def test_azure_filter_without_a_message_is_content_policy_naming_the_category(
    provider, upstream, store, caplog
) -> None:
    upstream.script(azure_filtered_reply(["hate"]), Reply.text("must not be reached"))
    with caplog.at_level(logging.DEBUG, logger="hive_mcp"), pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    err = info.value
    assert (err.error_type, err.attempts, err.retryable) == ("content_policy", 1, False)
    line = assert_one_line(err)
    assert "content filter" in line and "(hate)" in line
    assert len(upstream.chat_requests()) == 1
    [item] = store.list().items
    dump = store.read(item.id)
    assert dump.error_type == "content_policy" and dump.outcome == "not_retried"
    [attempt] = dump.attempts
    assert attempt.message == err.message
    assert attempt.detail and "Traceback" in attempt.detail  # litellm's whole text, for the dump alone
    assert not any("Traceback" in r.getMessage() or "\n" in r.getMessage() for r in caplog.records)


async def test_azure_filter_with_a_message_is_content_policy(provider, upstream, store) -> None:
    upstream.script(azure_filtered_reply(["violence", "sexual"], content="Once upon"), Reply.text("unused"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    assert info.value.error_type == "content_policy" and info.value.attempts == 1
    assert "(sexual, violence)" in assert_one_line(info.value)
    assert len(upstream.chat_requests()) == 1 and store.count() == 1


async def test_streamed_content_filter_ends_the_stream_as_content_policy(provider, upstream, store) -> None:
    upstream.script(Reply.stream(["Once "], finish_reason="content_filter"), Reply.stream(["unused"]))
    events = await collect(provider)
    err = events[-1]
    assert isinstance(err, StreamErrorEvent) and err.error_type == "content_policy" and not err.recoverable
    assert texts(events) == "Once "
    assert_one_line(err)
    assert len(upstream.chat_requests()) == 1 and store.count() == 1


async def test_gemini_safety_stop_is_content_policy(upstream, store) -> None:
    gemini = LiteLLMProvider(
        model="gemini/gemini-2.0-flash", api_key="gemini-test-key", api_base=upstream.anthropic_base,
        retry=FAST_RETRY, dump_store=store,
    )
    upstream.script(gemini_reply(None, finish_reason="SAFETY"), gemini_reply("unused"))
    with pytest.raises(ProviderError) as info:
        await gemini.acomplete(USER)
    assert info.value.error_type == "content_policy" and info.value.attempts == 1
    assert len(upstream.chat_requests()) == 1 and store.count() == 1


# -- reasoning ------------------------------------------------------------------------------


async def test_reasoning_comes_back_apart_from_the_content(provider, upstream) -> None:
    upstream.script(reasoning_reply("Paris.", "The capital of France is Paris.", reasoning_tokens=9))
    response = await provider.acomplete(USER)
    assert response.content == "Paris." and response.reasoning == "The capital of France is Paris."
    assert response.reasoning_tokens == 9


async def test_no_reasoning_is_none(provider, upstream) -> None:
    upstream.script(Reply.text("plain"))
    response = await provider.acomplete(USER)
    assert response.reasoning is None and response.reasoning_tokens == 0


async def test_anthropic_thinking_is_reasoning(anthropic, upstream) -> None:
    upstream.script(anthropic_reply([
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig"}, {"type": "text", "text": "Answer"},
    ]))
    response = await anthropic.acomplete(USER)
    assert (response.content, response.reasoning) == ("Answer", "Let me think.")


async def test_streamed_reasoning_is_its_own_events(provider, upstream) -> None:
    upstream.script(streamed_reasoning(["Think", "ing."], ["Ans", "wer"], reasoning_tokens=4))
    events = await collect(provider)
    assert texts(events, ReasoningDeltaEvent) == "Thinking." and texts(events) == "Answer"
    finish = events[-1]
    assert isinstance(finish, FinishEvent) and finish.response.reasoning == "Thinking." and finish.response.reasoning_tokens == 4


# -- litellm's own failures: bad_response, not retried, one line ----------------------------


async def test_a_reply_litellm_cannot_parse_is_bad_response_not_retried(provider, upstream, store) -> None:
    upstream.script(no_message_reply(), Reply.text("must not be reached"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    assert info.value.error_type == "bad_response" and info.value.attempts == 1
    assert "Invalid response object" in assert_one_line(info.value)
    assert len(upstream.chat_requests()) == 1
    [attempt] = store.read(store.list().items[0].id).attempts
    assert attempt.detail and "Traceback" in attempt.detail and "Traceback" not in attempt.message


async def test_a_stream_without_a_finish_reason_is_bad_response_not_retried(provider, upstream) -> None:
    upstream.script(Reply.stream(["cut "], finish_reason=None), Reply.stream(["unused"]))
    events = await collect(provider)
    err = events[-1]
    assert isinstance(err, StreamErrorEvent) and err.error_type == "bad_response" and not err.recoverable
    assert_one_line(err)
    assert len(upstream.chat_requests()) == 1


# -- through the MCP server: a refusal is a result, its streamed text is progress ----------------


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_refusal_reaches_the_client_as_a_result_and_its_text_as_progress(
    provider, upstream, store, tool: str
) -> None:
    from mcp import Client

    parts = ("I'm sorry, ", "but I can't help with that.")
    upstream.script(refusal_reply(SORRY) if tool == "complete" else streamed_refusal(*parts))
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if message:
            progress.append(message)

    server = mcp_server(provider, store, default_model="openai/gpt-4o-mini")
    async with Client(server, raise_exceptions=True, mode="auto") as client:
        result = await client.call_tool(tool, {"prompt": "hi"}, progress_callback=on_progress)
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["content"] == SORRY and result.structured_content["stop_reason"] == "refusal"
    if tool == "stream_complete":
        assert "".join(progress) == SORRY
    assert len(upstream.chat_requests()) == 1 and store.count() == 0


async def test_a_multi_line_upstream_message_is_one_line_in_the_attempt_and_the_log(
    provider, upstream, store, caplog
) -> None:
    body = "overloaded\nTraceback (most recent call last):\n  File \"srv.py\", line 3\nRuntimeError: busy"
    upstream.script(Reply.error(503, body), Reply.text("ok"))
    with caplog.at_level(logging.DEBUG, logger="hive_mcp"):
        response = await provider.acomplete(USER)
    assert response.content == "ok"
    [attempt] = store.read(store.list().items[0].id).attempts
    assert attempt.message == "overloaded"
    assert caplog.records and not any("\n" in r.getMessage() for r in caplog.records)


# -- a reply that does not parse: bad_response for every provider, the parser's complaint quoted -------

CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
SSE_BODY = f"data: {json.dumps(CHUNK)}\n\ndata: [DONE]\n\n".encode()


@pytest.mark.parametrize(
    ("model", "openai_path"),
    [
        ("openai/gpt-4o-mini", True),
        ("anthropic/claude-test", False),
        ("cohere_chat/command-r", False),
        ("gemini/gemini-2.0-flash", False),
    ],
)
async def test_an_event_stream_sent_to_a_request_that_did_not_stream_is_bad_response_not_retried(
    upstream, store, model: str, openai_path: bool
) -> None:
    provider = LiteLLMProvider(
        model=model, api_key="provider-test-key", retry=FAST_RETRY, dump_store=store,
        api_base=upstream.base_url if openai_path else upstream.anthropic_base,
    )
    upstream.script(Reply.raw(SSE_BODY, content_type="text/event-stream"), Reply.text("must not be reached"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER)
    assert (info.value.error_type, info.value.attempts, info.value.retryable) == ("bad_response", 1, False)
    line = assert_one_line(info.value)
    assert "Expecting value: line 1 column 1 (char 0)" in line, line
    assert len(upstream.chat_requests()) == 1


async def test_a_stream_chunk_that_does_not_parse_is_bad_response_not_retried(provider, upstream) -> None:
    upstream.script(Reply.stream([b"data: not json\n\n", "never"]), Reply.stream(["must not be reached"]))
    events = await collect(provider)
    err = events[-1]
    assert isinstance(err, StreamErrorEvent) and err.error_type == "bad_response" and not err.recoverable
    assert "Expecting value: line 1 column 1 (char 0)" in assert_one_line(err)
    assert len(upstream.chat_requests()) == 1


# -- several choices (n=2): choice 0 only, streamed or not ------------------------------------------


def two_choice_stream(first: list[str], second: list[str]) -> Reply:
    """An OpenAI stream answering n=2: each chunk carries one choice's delta, the two interleaved."""
    def event(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
                 "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    events = [event(i, {"role": "assistant", "content": ""}, None) for i in (0, 1)]
    for a, b in zip(first, second):
        events += [event(0, {"content": a}, None), event(1, {"content": b}, None)]
    events += [event(1, {}, "length"), event(0, {}, "stop")]
    return Reply.stream(events, finish_reason=None)


def two_choice_reply(first: str, second: str) -> Reply:
    reply = Reply.text(first)
    choice = dict(reply.body["choices"][0], index=1, message={"role": "assistant", "content": second})
    reply.body["choices"].append(choice)
    return reply


async def test_a_stream_of_two_choices_is_choice_0_as_the_reply_that_did_not_stream(provider, upstream) -> None:
    first, second = ["I'm ", "unable ", "to ", "help."], ["I ", "cannot ", "do ", "that."]
    upstream.script(two_choice_reply("".join(first), "".join(second)), two_choice_stream(first, second))
    plain = await provider.acomplete(USER)
    events = await collect(provider)
    finish = events[-1]
    assert isinstance(finish, FinishEvent)
    assert texts(events) == finish.response.content == plain.content == "I'm unable to help."
    assert finish.response.stop_reason == plain.stop_reason


# -- a request that could not be sent is not a reply that did not parse -------------------------------


@pytest.mark.parametrize(
    ("userinfo", "port"),
    [("user:hunter2hunter2@", None), ("", "99999")],  # credentials in the URL beside the key; no such port
    ids=["credentials-in-url", "port-out-of-range"],
)
async def test_a_request_that_could_not_be_sent_keeps_its_category_while_a_reply_that_did_not_parse_is_bad_response(
    upstream: Upstream, store: DumpStore, userinfo: str, port: str | None
) -> None:
    host = upstream.base_url.split("://", 1)[1]
    if port is not None:
        host = host.replace(host.split("/", 1)[0].rsplit(":", 1)[1], port, 1)
    unsendable = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key="provider-test-key", retry=FAST_RETRY, dump_store=store,
        api_base=f"http://{userinfo}{host}",
    )
    with pytest.raises(ProviderError) as info:
        await unsendable.acomplete(USER)
    assert (info.value.error_type, info.value.attempts, info.value.retryable) == ("bad_request", 1, False)
    line = assert_one_line(info.value)
    assert "did not parse" not in line and "hunter2hunter2" not in line, line
    assert upstream.chat_requests() == []  # nothing was sent, so nothing was there to parse
    # The same provider's reply that is not JSON stays bad_response.
    sendable = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key="provider-test-key", retry=FAST_RETRY, dump_store=store,
        api_base=upstream.base_url,
    )
    upstream.script(Reply.raw(b'{"choices": [', content_type="application/json"), Reply.text("must not be reached"))
    with pytest.raises(ProviderError) as info:
        await sendable.acomplete(USER)
    assert (info.value.error_type, info.value.attempts, info.value.retryable) == ("bad_response", 1, False)
    assert "did not parse" in assert_one_line(info.value)
