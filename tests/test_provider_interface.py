"""The provider interface: one request shape, the keyword API built into it in one place."""

from __future__ import annotations

import json

import pytest

from hive_mcp.provider import CompletionRequest, DeferredProvider, FinishEvent, LiteLLMProvider, LLMResponse, Tool
from hive_mcp.provider.base import build_request
from harness.upstream import Reply
from tests.conftest import MODEL
from tests.provider_calls import USER

UNCOUNTABLE = [{"role": "user", "content": [
    {"type": "text", "text": "hi"}, {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
]}]  # fmt: skip
"""A prompt litellm's token counter raises on (1.110 counts no audio part), which it sends all the same."""
TOOLS = [Tool(name="weather").to_openai()]


def test_keywords_go_to_their_fields_and_the_rest_to_extra() -> None:
    req = build_request(
        USER, 1024,
        {"model": "openai/x", "deadline": 5.0, "temperature": 0.2, "max_retries": 1, "system": "s",
         "api_base": "http://h", "timeout": 3},
    )
    assert (req.model, req.deadline, req.temperature, req.max_retries, req.system) == ("openai/x", 5.0, 0.2, 1, "s")
    assert req.extra == {"api_base": "http://h", "timeout": 3} and req.max_tokens == 1024


def test_a_request_comes_alone() -> None:
    req = CompletionRequest(messages=USER, max_tokens=7)
    assert build_request(req, 1024, {}) is req
    with pytest.raises(TypeError, match="model"):
        build_request(req, 1024, {"model": "openai/x"})


async def test_a_stream_finishes_with_the_response_acomplete_would_give(provider, upstream) -> None:
    upstream.script(Reply.stream(["Hel", "lo"]), Reply.text("Hello"))
    events = [e async for e in provider.stream(USER)]
    finish = events[-1]
    assert isinstance(finish, FinishEvent) and isinstance(finish.response, LLMResponse)
    assert finish.response.content == "Hello" == (await provider.acomplete(USER)).content


async def test_a_finish_event_reads_like_hives_flat_one(provider, upstream) -> None:
    """Code written against hive's provider reads the finish's tokens, stop reason and model on the
    event itself: they are its response's, and read-only (the response is the one record)."""
    upstream.script(Reply.stream(["Hi"], finish_reason="length", usage={
        "prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}))
    finish = [e async for e in provider.stream(USER)][-1]
    assert isinstance(finish, FinishEvent)
    flat = (finish.input_tokens, finish.output_tokens, finish.stop_reason, finish.model)
    assert flat == (13, 5, finish.response.stop_reason, finish.response.model)
    assert finish.stop_reason and finish.model
    with pytest.raises(AttributeError):
        finish.input_tokens = 1  # type: ignore[misc]


async def test_request_object_and_keywords_send_the_same(provider, upstream) -> None:
    upstream.script(Reply.text("a"), Reply.text("b"))
    tools = [Tool(name="f")]
    await provider.acomplete(USER, system="S", tools=tools, max_tokens=50, temperature=0.5, user="u1")
    await provider.acomplete(
        CompletionRequest(messages=USER, system="S", tools=tools, max_tokens=50, temperature=0.5, extra={"user": "u1"})
    )
    first, second = (r.body for r in upstream.chat_requests())
    assert first == second and first["max_tokens"] == 50 and first["user"] == "u1" and first["temperature"] == 0.5


@pytest.mark.parametrize(("method", "sent"), [("acomplete", 1024), ("stream", 4096)])
async def test_keyword_defaults_for_max_tokens(provider: LiteLLMProvider, upstream, method: str, sent: int) -> None:
    upstream.script(Reply.text("x") if method == "acomplete" else Reply.stream(["x"]))
    if method == "acomplete":
        await provider.acomplete(USER)
    else:
        [e async for e in provider.stream(USER)]
    assert upstream.chat_requests()[0].body["max_tokens"] == sent


def test_sync_complete_honours_the_deadline(provider, upstream) -> None:
    from hive_mcp.provider import ProviderError

    upstream.script(Reply.hang())
    with pytest.raises(ProviderError) as info:
        provider.complete(USER, deadline=0.3)
    assert info.value.error_type == "timeout"


async def test_sync_complete_inside_a_running_loop(provider, upstream) -> None:
    upstream.script(Reply.text("from a worker thread"))
    assert provider.complete(USER).content == "from a worker thread"


@pytest.mark.parametrize("messages", [USER, UNCOUNTABLE], ids=["countable", "uncountable"])
def test_a_prompts_size_is_litellms_count_else_its_utf8_bytes(messages) -> None:
    """One rule for what a prompt weighs (a budget's worst case, a billed prompt): litellm's count for the
    model, else the UTF-8 bytes of the messages and tools, which no byte-level tokenizer exceeds; `counted`
    says which. `count_tokens` still answers None where litellm cannot count."""
    provider = LiteLLMProvider(model=MODEL, dump_store=False)
    count = provider.count_tokens(messages, MODEL, tools=TOOLS)
    size = provider.prompt_size(messages, MODEL, tools=TOOLS)
    if messages is USER:
        assert count and size.counted and size.tokens == count
    else:
        assert count is None and not size.counted
        assert size.tokens == len(json.dumps([messages, TOOLS], ensure_ascii=False).encode())


def test_a_provider_that_cannot_count_sizes_a_prompt_by_its_bytes() -> None:
    """A provider that failed to load counts nothing: its prompts weigh their bytes, never None."""
    def unloadable() -> LiteLLMProvider:
        raise RuntimeError("no provider here")

    provider = DeferredProvider(unloadable, model=MODEL)
    size = provider.prompt_size(USER, MODEL)
    assert provider.count_tokens(USER, MODEL) is None
    assert (size.tokens, size.counted) == (len(json.dumps([USER, None], ensure_ascii=False).encode()), False)
