"""Which failures LiteLLMProvider retries, how long it waits, and what it gives up with: rate limits and each
retry-after form, transient and permanent errors, empty replies and streams, and retry waits that leave the
event loop free. Through litellm's real HTTP path, against the scripted upstream."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import anyio
import pytest

from hive_mcp.provider import FinishEvent, LiteLLMProvider, ProviderError, StreamErrorEvent, TextDeltaEvent
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.provider_calls import USER, collect, only_dump
from harness.upstream import Reply


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


UNKNOWN_PART = [{"role": "user", "content": [{"type": "no-such-part", "text": "hi"}]}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_message_litellm_refuses_before_sending_is_a_bad_request_never_retried(
    provider, upstream, store, stream: bool
) -> None:
    """litellm refuses a user message's unknown part type as it builds the request and raises it as a connection
    error: nothing was sent, and sending it again fails the same way. It is `bad_request`, not retried under the
    default policy (ten retries), one line naming the message and the part type, the key nowhere."""
    upstream.script(Reply.text("must not be reached"))
    if stream:
        failed = (await collect(provider, UNKNOWN_PART))[-1]
        assert isinstance(failed, StreamErrorEvent)
        line, retryable = failed.error, failed.recoverable
    else:
        with pytest.raises(ProviderError) as info:
            await provider.acomplete(UNKNOWN_PART)
        failed, line, retryable = info.value, str(info.value), info.value.retryable
    assert upstream.requests == []
    assert (failed.error_type, failed.attempts, retryable) == ("bad_request", 1, False), line
    assert line.startswith("bad_request error from model openai/gpt-4o-mini after 1 attempt: "), line
    assert "messages[0]" in line and "no-such-part" in line, line
    assert "\n" not in line and "Traceback" not in line and TEST_KEY not in line, line
    assert only_dump(store).outcome == "not_retried"


@pytest.mark.parametrize("url", ["ftp://images.example/cat.png", "data:nonsense"])
async def test_an_image_gemini_refuses_before_sending_is_a_bad_request_never_retried(upstream, store, url: str) -> None:
    """Gemini's request builder (its process_gemini_media) refuses an image URL it cannot take and litellm raises
    it as a connection error: nothing was sent, so it is the caller's `bad_request`, tried once (not ten retries,
    nor counted against the deployment), one line naming the message and litellm's complaint."""
    provider = LiteLLMProvider(
        model="gemini/gemini-2.0-flash", api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY,
        dump_store=store,
    )
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(image)
    line = str(info.value)
    assert upstream.requests == []
    assert (info.value.error_type, info.value.attempts, info.value.retryable) == ("bad_request", 1, False), line
    assert "litellm refused the request before sending it" in line and url in line, line
    assert "\n" not in line and TEST_KEY not in line, line


GOOGLE_ERRORS = [
    (400, "INVALID_ARGUMENT", "* GenerateContentRequest.generation_config.max_output_tokens: must be positive", "bad_request"),
    (403, "PERMISSION_DENIED", "Permission denied: Consumer 'api_key:AIza' has been suspended.", "auth"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("status", "reason", "message", "error_type"), GOOGLE_ERRORS, ids=["400", "403"])
async def test_a_gemini_error_status_is_its_category_with_googles_own_message_streamed_or_not(
    upstream, store, stream: bool, status: int, reason: str, message: str, error_type: str
) -> None:
    """Google's pretty-printed error body: 403 is `auth` whatever class litellm raises, and the line ends with
    Google's message, not litellm's wrapping of the raw body (streamed, litellm words it differently)."""
    body = {"error": {"code": status, "message": message + "\n", "status": reason}}
    upstream.script(Reply.raw(json.dumps(body, indent=2).encode(), status=status), Reply.text("must not be reached"))
    gemini = LiteLLMProvider(
        model="gemini/gemini-2.0-flash", api_key="gemini-test-key", api_base=upstream.anthropic_base,
        retry=FAST_RETRY, dump_store=store,
    )  # fmt: skip
    if stream:
        failed = (await collect(gemini))[-1]
        assert isinstance(failed, StreamErrorEvent)
        line = failed.error
    else:
        with pytest.raises(ProviderError) as info:
            await gemini.acomplete(USER)
        failed, line = info.value, str(info.value)
    assert failed.error_type == error_type, line
    assert line.endswith(f"after 1 attempt: {message}"), line
    assert len(upstream.chat_requests()) == 1


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
