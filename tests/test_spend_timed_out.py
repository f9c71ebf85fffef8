"""An attempt that timed out once its request went (a read timeout, an error status 408, which the LiteLLM proxy
answers for its own upstream's timeout) may have been billed: the upstream had the request in hand. The call
owes its prompt by litellm's count (`estimated`), whatever ends it: held before the retry, charged beside the
answer. A connection that never opened (a connect timeout) sent nothing: free. Through the SDK's real Client and
litellm's real HTTP path, on a real SQLite file.

Prices are litellm's map for gpt-4o-mini.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.mcp.results import call_facts
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from tests.clients import MODEL, connect, mcp_server, text_of
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.spend_calls import EPOCH, IN, OUT, assert_retry_held_for_first
from harness.upstream import Reply, Upstream

HELLO = [{"role": "user", "content": "hello"}]
KEPT = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
ATTEMPT_TIMEOUT_S = 0.3
"""litellm's `timeout` for each attempt: a hung upstream's attempt ends in a read timeout this soon."""


def timing_out(api_base: str, store: DumpStore) -> LiteLLMProvider:
    return LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=api_base, retry=FAST_RETRY, dump_store=store,
        timeout=ATTEMPT_TIMEOUT_S,
    )  # fmt: skip


def prompt_of(provider: LiteLLMProvider) -> int:
    counted = provider.count_tokens(HELLO, MODEL)
    assert counted
    return counted


@contextmanager
def unopened_port() -> Iterator[int]:
    """A port whose connections never open: its listener's accept queue is full and nothing takes from it, so
    the kernel drops each new connection's SYN and a client's connect times out."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        first = stack.enter_context(socket.socket())
        first.setblocking(False)
        first.connect_ex(("127.0.0.1", port))
        _, ready, _ = select.select([], [first], [], 5.0)  # its handshake done: the queue is full
        assert ready, "the first connection to the listener did not open"
        yield port


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize("timed_out", ["read-timeout", "status-408"])
async def test_an_attempt_timed_out_after_its_request_went_is_charged_its_prompt_beside_the_answer(
    upstream: Upstream, store: DumpStore, tmp_path: Path, timed_out: str, tool: str
) -> None:
    provider = timing_out(upstream.base_url, store)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    first = Reply.hang() if timed_out == "read-timeout" else Reply.error(408, "request timed out")
    answer = Reply.text("hi", usage=KEPT) if tool == "complete" else Reply.stream(["hi"], usage=KEPT)
    upstream.script(first, answer)
    async with connect(server, "legacy") as c:
        result = await c.call_tool(tool, {"prompt": "hello"})
    assert not result.is_error and text_of(result) == "hi", text_of(result)
    assert len(upstream.chat_requests()) == 2
    p = prompt_of(provider)
    facts = call_facts(result)
    assert (facts["input_tokens"], facts["output_tokens"], facts["attempts"]) == (p + 11, 7, 2)
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (p + 11, 7, True)
    assert abs(call.cost - micro((p + 11) * IN + 7 * OUT)) <= 1


async def test_a_retry_after_an_attempt_that_timed_out_is_held_for_first(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    """The timed-out attempt's prompt is owed beside the next attempt's worst case."""
    provider = timing_out(upstream.base_url, store)
    first = Reply.error(408, "request timed out")
    await assert_retry_held_for_first(provider, store, upstream, tmp_path, first, prompt_of(provider))


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_attempts_whose_connection_never_opened_cost_nothing(
    store: DumpStore, tmp_path: Path, tool: str
) -> None:
    """Each attempt's connect timed out: no request reached an upstream, so none was billed."""
    with unopened_port() as port:
        provider = timing_out(f"http://127.0.0.1:{port}/v1", store)
        spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
        server = mcp_server(provider, store, spend=spend)
        async with connect(server, "legacy") as c:
            failed = await c.call_tool(tool, {"prompt": "hello", "max_retries": 1})
    assert failed.is_error and text_of(failed).startswith("timeout error"), text_of(failed)
    assert spend.settled().calls(EPOCH) == []


UNCOUNTABLE = [{"role": "user", "content": [
    {"type": "text", "text": "hello"}, {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
]}]  # fmt: skip
"""A prompt litellm's token counter raises on (1.110 counts no audio part), which it sends all the same."""


async def test_a_prompt_litellm_cannot_count_is_held_and_owed_at_its_bytes(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    """The budget's worst case and the timed-out attempt's owed prompt weigh the prompt by the one rule (the
    provider's `prompt_size`): without litellm's count, its UTF-8 bytes, for both."""
    provider = timing_out(upstream.base_url, store)
    size = provider.prompt_size(UNCOUNTABLE, MODEL)
    assert not size.counted and provider.count_tokens(UNCOUNTABLE, MODEL) is None
    budgets = Budgets.from_settings(day=1.0, month=None, section=None)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    ticket = await spend.reserve("local", MODEL, UNCOUNTABLE, system="", max_tokens=16, deadline=5.0)
    assert ticket.prompt_tokens == size.tokens
    await spend.release(ticket)
    upstream.script(Reply.error(408, "request timed out"), Reply.text("hi", usage=KEPT))
    reply = await provider.acomplete(UNCOUNTABLE, max_tokens=16)
    assert (reply.input_tokens, reply.estimated) == (size.tokens + 11, True)
