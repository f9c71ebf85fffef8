"""Every 2xx reply the upstream sent was billed by the provider, whether the call kept it or not: a call is
charged each one, at the usage it reported, else its prompt by litellm's count (the row then says `estimated`),
and a call that answers shows them in its result's usage too. Through the SDK's real Client and litellm's real
HTTP path, on a real SQLite file and a real valkey-server.

Prices are litellm's map for gpt-4o-mini (gpt-4o for the fallback group).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.mcp.results import call_facts
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import Backend
from tests.clients import MODEL, connect, mcp_server, text_of
from tests.conftest import FAST_RETRY
from tests.spend_calls import EPOCH, IN, OUT, assert_retry_held_for_first, cancel_once, fallback_server, requests_seen
from harness.upstream import Reply, Upstream

HELLO = [{"role": "user", "content": "hello"}]
KEPT = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def silent_empty() -> Reply:
    """A whole reply with no text and no `usage`: billed, but it says nothing of what."""
    reply = Reply.text("")
    del reply.body["usage"]
    return reply


def silent_empty_stream() -> Reply:
    """A stream with no text and no usage chunk."""
    reply = Reply.stream([])
    reply.chunks = [c for c in reply.chunks if not (isinstance(c, dict) and "usage" in c)]
    return reply


def prompt_of(provider: LiteLLMProvider, model: str = MODEL) -> int:
    counted = provider.count_tokens(HELLO, model)
    assert counted
    return counted


async def test_each_empty_reply_without_usage_is_charged_its_prompt_when_the_call_fails(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(*[silent_empty()] * 3)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("complete", {"prompt": "hello", "max_retries": 2})
    assert failed.is_error and "empty" in text_of(failed), text_of(failed)
    assert len(upstream.chat_requests()) == 3
    [call] = spend.settled().calls(EPOCH)
    p = prompt_of(provider)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (3 * p, 0, True)
    assert call.cost == micro(3 * p * IN)


async def test_an_empty_reply_without_usage_retried_before_an_answer_is_charged_its_prompt(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(silent_empty(), Reply.text("hi", usage=KEPT))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello"})
    assert not result.is_error and text_of(result) == "hi", text_of(result)
    p = prompt_of(provider)
    facts = call_facts(result)
    assert (facts["input_tokens"], facts["output_tokens"]) == (p + 11, 7)
    assert facts["cost_usd"] == pytest.approx((p + 11) * IN + 7 * OUT, rel=1e-9)
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (p + 11, 7, True)
    assert abs(call.cost - micro((p + 11) * IN + 7 * OUT)) <= 1


async def test_a_call_cancelled_in_the_retry_after_an_empty_reply_without_usage_owes_both_prompts(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    """The silent reply was billed, and so may the retry be, which the upstream has in hand when the client
    cancels: two prompts."""
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(silent_empty(), Reply.hang())
    async with connect(server, "legacy") as c:
        await cancel_once(c, "complete", {"prompt": "hello"}, requests_seen(upstream, 2))
    p = prompt_of(provider)
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (2 * p, 0, True)
    assert call.cost == micro(2 * p * IN)


async def test_a_retry_after_an_empty_reply_without_usage_is_held_for_first(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """The silent reply's prompt is owed beside the next attempt's worst case."""
    await assert_retry_held_for_first(provider, store, upstream, tmp_path, silent_empty(), prompt_of(provider))


async def test_an_empty_stream_without_usage_retried_before_an_answer_is_charged_as_estimated(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """litellm makes a usage up for a stream that sent none (its count): the retried stream is charged that
    count, and the row says it is one."""
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(silent_empty_stream(), Reply.stream(["hi"], usage=KEPT))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("stream_complete", {"prompt": "hello"})
    assert not result.is_error and text_of(result) == "hi", text_of(result)
    p = prompt_of(provider)
    [call] = spend.settled().calls(EPOCH)
    assert call.estimated and (call.input_tokens, call.output_tokens) == (p + 11, 7)
    assert call_facts(result)["input_tokens"] == p + 11


async def test_each_unreadable_reply_is_charged_its_prompt_across_a_fallback(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    """`fast` answers 200 with a body that is not JSON, and so does `smart`, its fallback: two replies billed,
    two prompts owed (at smart's prices, where the call ended)."""
    server, spend = fallback_server(upstream, store, tmp_path, SQLiteBackend(tmp_path / "spend.sqlite3"), 1.0)
    upstream.script(*[Reply.raw(b"<html>not json</html>")] * 2)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("complete", {"prompt": "hello", "model": "fast", "max_retries": 0})
    assert failed.is_error and "bad_response" in text_of(failed), text_of(failed)
    assert [r.body["model"] for r in upstream.chat_requests()] == ["gpt-4o-mini", "gpt-4o"]
    [call] = spend.settled().calls(EPOCH)
    counter = LiteLLMProvider(dump_store=False)
    mini, big = prompt_of(counter, "openai/gpt-4o-mini"), prompt_of(counter, "openai/gpt-4o")
    assert (call.input_tokens, call.output_tokens, call.estimated) == (mini + big, 0, True)
    assert (call.group, call.called) == ("smart", "fast")



async def test_an_empty_reply_without_usage_is_charged_at_the_prices_the_config_gives(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    """A deployment litellm's map does not know, priced by the config: the silent reply's prompt is charged at
    those prices beside the answer's usage."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: house\n"
        f'    litellm_params: {{model: openai/house-5, api_base: "{upstream.base_url}", api_key: sk-x,'
        " input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n"
    )
    provider = LiteLLMProvider(model="house", router=ModelRouter(load_config(path, {})), retry=FAST_RETRY,
                               dump_store=store)  # fmt: skip
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, default_model="house", spend=spend)
    upstream.script(silent_empty(), Reply.text("hi", usage=KEPT, model="house-5"))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello"})
    assert not result.is_error and text_of(result) == "hi", text_of(result)
    p = prompt_of(LiteLLMProvider(dump_store=False), "openai/house-5")
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.estimated) == (p + 11, 7, True)
    assert abs(call.cost - micro((p + 11) * 1e-6 + 7 * 2e-6)) <= 1
    assert call_facts(result)["cost_usd"] == pytest.approx((p + 11) * 1e-6 + 7 * 2e-6, rel=1e-9)


def filtered_stream(reported: bool) -> Reply:
    """A stream that relays text, then ends in the provider's content filter; with its usage chunk or without."""
    reply = Reply.stream(["Once upon "], finish_reason="content_filter")
    if not reported:
        reply.chunks = [c for c in reply.chunks if not (isinstance(c, dict) and "usage" in c)]
    return reply


@pytest.mark.parametrize("reported", [True, False], ids=["usage-reported", "no-usage"])
async def test_a_filtered_stream_that_relayed_text_is_charged_its_reply_once(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend, reported: bool
) -> None:
    """The reply's usage holds its prompt and the text it relayed: the upstream's figure when it reported one,
    else litellm's count of them (estimated), never both."""
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(filtered_stream(reported))
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("stream_complete", {"prompt": "hello"})
    assert failed.is_error and "content_policy" in text_of(failed), text_of(failed)
    [call] = spend.settled().calls(EPOCH)
    if reported:
        assert (call.input_tokens, call.output_tokens, call.estimated) == (11, 7, False)
        assert call.cost == micro(11 * IN + 7 * OUT)
    else:
        out = provider.count_text("Once upon ", MODEL)
        assert (call.input_tokens, call.output_tokens, call.estimated) == (prompt_of(provider), out, True)


@pytest.mark.parametrize("end", ["silent-replies", "filtered-stream", "refused"])
async def test_a_failed_call_s_result_says_what_it_was_charged(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path, end: str
) -> None:
    """The error result's structured content holds what its row in the ledger says: the tokens charged, their
    cost and whether litellm counted them; nothing, for a call the upstream refused."""
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    p = prompt_of(provider)
    tool, replies, charged = {
        "silent-replies": ("complete", [silent_empty()] * 2, (2 * p, 0, micro(2 * p * IN), True)),
        "filtered-stream": ("stream_complete", [filtered_stream(True)], (11, 7, micro(11 * IN + 7 * OUT), False)),
        "refused": ("complete", [Reply.error(400, "bad field")], (0, 0, 0, False)),
    }[end]  # fmt: skip
    upstream.script(*replies)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(tool, {"prompt": "hello", "max_retries": 1})
    assert failed.is_error and failed.structured_content is not None, text_of(failed)
    assert failed.structured_content["charged"] == {
        "input_tokens": charged[0], "output_tokens": charged[1], "cost_usd": charged[2] / 1e6, "estimated": charged[3],
    }  # fmt: skip
    rows = spend.settled().calls(EPOCH)
    assert [(r.input_tokens, r.output_tokens, r.cost, r.estimated) for r in rows] == ([charged] if charged[0] else [])
