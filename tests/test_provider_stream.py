"""The stream path's own costs: litellm's end-of-stream pass, and reading chunks (provider/stream.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from hive_mcp.provider import FinishEvent, LiteLLMProvider
from hive_mcp.provider.offline import litellm
from hive_mcp.provider.stream import get
from harness.upstream import Reply, Upstream
from tests.provider_calls import USER

USAGE = {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}
DISPATCH = "dispatch_success_handlers"
"""The coroutine litellm's end-of-stream pass starts for its callbacks."""


@pytest.fixture
async def tasks() -> AsyncIterator[list[str]]:
    """The names of the coroutines every task started on this loop runs, from here on."""
    loop = asyncio.get_running_loop()
    started: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any], **kw: Any):
        started.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)
    yield started
    loop.set_task_factory(None)


async def finish_of(provider: LiteLLMProvider) -> FinishEvent:
    events = [ev async for ev in provider.stream(USER)]
    assert isinstance(events[-1], FinishEvent), events
    return events[-1]


@pytest.fixture
def nothing_listens() -> Iterator[None]:
    """litellm's callback lists empty (a Router built by another test leaves its strategy's handler there)."""
    lists = (litellm.callbacks, litellm.success_callback, litellm._async_success_callback)
    saved = [list(callbacks) for callbacks in lists]
    for callbacks in lists:
        callbacks.clear()
    yield
    for callbacks, before in zip(lists, saved):
        callbacks[:] = before


@pytest.mark.usefixtures("nothing_listens")
async def test_with_nothing_listening_the_stream_ends_on_litellms_usage_chunk(
    provider: LiteLLMProvider, upstream: Upstream, tasks: list[str]
) -> None:
    upstream.script(Reply.stream(["a", "b"], usage=USAGE))
    finish = await finish_of(provider)
    assert (finish.response.content, finish.response.input_tokens, finish.response.output_tokens) == ("ab", 21, 4)
    assert not any(name.endswith(DISPATCH) for name in tasks), tasks


async def test_a_streams_cost_prices_cache_reads_at_their_rate(provider: LiteLLMProvider, upstream: Upstream) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 200}}
    upstream.script(Reply.stream(["x"], usage=usage))
    finish = await finish_of(provider)
    price = litellm.model_cost["gpt-4o-mini"]
    expected = (
        800 * price["input_cost_per_token"]
        + 200 * price["cache_read_input_token_cost"]
        + 500 * price["output_cost_per_token"]
    )
    assert finish.response.cost_usd == pytest.approx(expected, rel=1e-9)


class Heard(litellm.integrations.custom_logger.CustomLogger):  # type: ignore[name-defined,misc]
    def __init__(self) -> None:
        super().__init__()
        self.success = anyio.Event()

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.success.set()


@pytest.mark.usefixtures("nothing_listens")
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_model_is_the_one_the_upstream_named(
    provider: LiteLLMProvider, upstream: Upstream, stream: bool
) -> None:
    """litellm names every chunk of an OpenAI-compatible stream for the model asked for; the reply says the one
    that answered (a dated snapshot), as a whole reply's does."""
    dated = "gpt-4o-mini-2024-07-18"
    upstream.script(Reply.stream(["Hi", " there"], model=dated) if stream else Reply.text("Hi there", model=dated))
    response = (await finish_of(provider)).response if stream else await provider.acomplete(USER)
    assert response.content == "Hi there" and response.model == dated


async def test_a_litellm_callback_still_hears_of_every_stream(
    provider: LiteLLMProvider, upstream: Upstream, tasks: list[str]
) -> None:
    heard = Heard()
    litellm.callbacks.append(heard)
    upstream.script(Reply.stream(["a", "b"], usage=USAGE))
    finish = await finish_of(provider)
    with anyio.fail_after(5):
        await heard.success.wait()
    assert finish.response.output_tokens == 4
    assert any(name.endswith(DISPATCH) for name in tasks), tasks


def chunk_shapes() -> list[Any]:
    """What `get` reads: litellm's stream chunks (fields deleted, extras, provider fields), openai's, plain."""
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices
    from openai.types.chat import ChatCompletionChunk

    delta = Delta(content="hi", reasoning_content="why", tool_calls=None)
    bare = Delta()
    chunk = ModelResponseStream(choices=[StreamingChoices(delta=delta, finish_reason="stop")], model="m")
    raw = ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"refusal": "no"}, "finish_reason": None}]}
    )  # fmt: skip
    return [delta, bare, chunk, chunk.choices[0], raw, raw.choices[0], raw.choices[0].delta, SimpleNamespace(content="x"),
            MadeUp()]  # fmt: skip


class MadeUp:
    """An object whose attributes its class makes up."""

    def __getattr__(self, name: str) -> str:
        return f"made-{name}"


NAMES = ["content", "reasoning_content", "thinking_blocks", "refusal", "tool_calls", "provider_specific_fields",
         "usage", "model", "choices", "delta", "finish_reason", "model_fields_set", "nothing_here"]  # fmt: skip


@pytest.mark.parametrize("index", range(len(chunk_shapes())))
def test_get_reads_what_getattr_reads(index: int) -> None:
    obj = chunk_shapes()[index]
    for name in NAMES:
        assert get(obj, name) == getattr(obj, name, None), (type(obj).__name__, name)


def test_get_reads_a_dict_by_key() -> None:
    assert (get({"content": "x"}, "content"), get({}, "content")) == ("x", None)
