"""A request's `cover` hook: told what was billed before a retry that follows a billed reply, in both loops, and
able to stop the call. Through litellm's real HTTP path, against the scripted upstream."""

from __future__ import annotations

import anyio
import pytest

from hive_mcp.provider import CompletionRequest, LiteLLMProvider, ProviderError, RetryPolicy, StreamErrorEvent, Usage
from tests.conftest import TEST_KEY
from tests.provider_calls import USER, only_dump
from harness.upstream import Reply


def billing(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Hook:
    """Records each `cover` call's billed tokens; refuses from call number `refuse_at` on."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.told: list[tuple[int, int]] = []
        self.refuse_at = refuse_at

    async def __call__(self, billed: Usage, stated: Usage) -> None:
        self.told.append((billed.input_tokens, billed.output_tokens))
        if self.refuse_at is not None and len(self.told) >= self.refuse_at:
            raise RuntimeError("the daily budget has no room\nfor the retry; the retry was not sent")


async def test_each_retry_after_a_billed_reply_is_covered_first(provider, upstream) -> None:
    """Told everything billed so far, before each retry that follows a billed reply, and only then: a failure
    that billed nothing (a 500) asks nothing more."""
    upstream.script(
        Reply.text("", usage=billing(10, 2)), Reply.error(500), Reply.text("", usage=billing(10, 3)),
        Reply.text("words", usage=billing(10, 5)),
    )  # fmt: skip
    hook = Hook()
    response = await provider.acomplete(CompletionRequest(messages=USER, cover=hook, max_retries=3))
    assert response.content == "words" and len(upstream.chat_requests()) == 4
    assert hook.told == [(10, 2), (20, 5)]
    assert (response.input_tokens, response.output_tokens) == (30, 10)


async def test_a_refused_cover_stops_the_call_with_what_was_billed(provider, upstream, store) -> None:
    upstream.script(Reply.text("", usage=billing(10, 2)), Reply.text("must not be reached"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(CompletionRequest(messages=USER, cover=Hook(refuse_at=1)))
    err = info.value
    assert len(upstream.chat_requests()) == 1
    assert err.error_type == "budget" and err.attempts == 1 and not err.retryable
    assert err.billed is not None and (err.billed.input_tokens, err.billed.output_tokens) == (10, 2)
    assert str(err) == (
        "budget error from model openai/gpt-4o-mini after 1 attempt: "
        "the daily budget has no room for the retry; the retry was not sent"
    )
    dump = only_dump(store)
    assert dump.error_type == "budget" and dump.outcome == "not_retried" and err.dump_id == dump.id
    assert dump.attempts[-1].message.endswith("; not retried: the daily budget has no room for the retry; the retry was not sent")


async def test_a_refused_cover_ends_a_stream_with_what_was_billed(provider, upstream) -> None:
    upstream.script(Reply.stream([], usage=billing(10, 2)), Reply.stream(["must not be reached"]))
    request = CompletionRequest(messages=USER, cover=Hook(refuse_at=1))
    events = [event async for event in provider.stream(request)]
    assert len(upstream.chat_requests()) == 1
    [end] = events
    assert isinstance(end, StreamErrorEvent) and end.error_type == "budget"
    assert end.billed is not None and (end.billed.input_tokens, end.billed.output_tokens) == (10, 2)


async def test_a_stream_retry_after_a_billed_empty_stream_is_covered(provider, upstream) -> None:
    upstream.script(Reply.stream([], usage=billing(10, 2)), Reply.stream(["ok"], usage=billing(10, 1)))
    hook = Hook()
    events = [event async for event in provider.stream(CompletionRequest(messages=USER, cover=hook))]
    assert hook.told == [(10, 2)] and len(upstream.chat_requests()) == 2
    assert events[-1].response.content == "ok"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_retry_the_hook_refuses_is_not_waited_for(upstream, store, stream: bool) -> None:
    """The hook is asked before the backoff, not after it: a call whose retry would wait an hour (here the
    whole deadline) ends as soon as the hook refuses, its backoff never slept."""
    slow = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url, dump_store=store,
        retry=RetryPolicy(base_delay_s=3600.0, max_delay_s=3600.0, stream_empty_delay_s=3600.0),
    )  # fmt: skip
    upstream.script(Reply.stream([], usage=billing(10, 2)) if stream else Reply.text("", usage=billing(10, 2)))
    request = CompletionRequest(messages=USER, cover=Hook(refuse_at=1))
    with anyio.fail_after(60):  # the deadline (600 s) would be slept first
        if stream:
            [end] = [event async for event in slow.stream(request)]
            assert isinstance(end, StreamErrorEvent) and end.error_type == "budget"
        else:
            with pytest.raises(ProviderError) as info:
                await slow.acomplete(request)
            assert info.value.error_type == "budget"
    assert len(upstream.chat_requests()) == 1
