"""A reply whose upstream states what it cost (OpenRouter's `usage.cost`, a LiteLLM proxy's
`x-litellm-response-cost` header) is charged that figure, in the ledger and in the result's `cost_usd`: it is
what the caller is billed, whether or not a price is known for the model and whatever the map's price says.
A reply that states nothing, or a cost of 0 (no price: README "Zero is not a price"), is priced as before.
Through the SDK's real Client, litellm's real HTTP path to a scripted upstream, a real SQLite ledger.

litellm 1.110.2's bundled map prices no `openrouter/` model: without a stated cost, every one is unpriced.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.mcp.results import call_facts
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from tests.clients import connect, mcp_server, text_of
from tests.conftest import FAST_RETRY
from harness.upstream import Reply, Upstream

EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
OPENROUTER = "openrouter/openai/gpt-4o-mini"
"""Unpriced here: litellm's map has no `openrouter/` entry."""
MAPPED = "openai/gpt-4o-mini"
"""In litellm's map at $0.15 / $0.60 per million tokens: 1000 in and 1000 out cost $0.00075 by it."""
HOUSE = "openai/house-model-x"
"""In no map at all."""
STATED = 0.0123


def usage(cost: float | None) -> dict[str, Any]:
    return {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000,
            **({"cost": cost} if cost is not None else {})}  # fmt: skip


def reply(tool: str, cost: float | None, header: str | None = None) -> Reply:
    """The upstream's answer, its cost stated in `usage.cost` (`cost`) or in the LiteLLM proxy's header (`header`)."""
    answer = Reply.text("hi", usage=usage(cost)) if tool == "complete" else Reply.stream(["hi"], usage=usage(cost))
    if header is not None:
        answer.headers["x-litellm-response-cost"] = header
    return answer


def serving(model: str, upstream: Upstream, store: DumpStore, tmp_path: Path) -> tuple[Spend, Any]:
    """A server calling `model` on the scripted upstream, its spend on a SQLite file."""
    provider = LiteLLMProvider(
        model=model, api_key="sk-x", api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    return spend, mcp_server(provider, store, default_model=model, spend=spend)


async def charged(
    model: str, answer: Reply, tool: str, upstream: Upstream, store: DumpStore, tmp_path: Path
) -> tuple[dict[str, Any], Any]:
    """One call to `model` answered by `answer`: the result's facts and its ledger row."""
    spend, server = serving(model, upstream, store, tmp_path)
    upstream.script(answer)
    async with connect(server, "legacy") as c:
        result = await c.call_tool(tool, {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    [row] = spend.settled().calls(EPOCH)
    return call_facts(result), row


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize("model", [OPENROUTER, MAPPED], ids=["unpriced", "priced"])
async def test_a_cost_the_upstream_states_in_its_usage_is_charged(
    upstream: Upstream, store: DumpStore, tmp_path: Path, model: str, tool: str
) -> None:
    facts, row = await charged(model, reply(tool, STATED), tool, upstream, store, tmp_path)
    assert (facts["cost_usd"], "unpriced" in facts) == (pytest.approx(STATED), False)
    assert (row.cost, row.unpriced, row.estimated) == (micro(STATED), False, False)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_cost_a_litellm_proxy_states_in_its_header_is_charged(
    upstream: Upstream, store: DumpStore, tmp_path: Path, tool: str
) -> None:
    facts, row = await charged(HOUSE, reply(tool, None, header=str(STATED)), tool, upstream, store, tmp_path)
    assert (facts["cost_usd"], "unpriced" in facts) == (pytest.approx(STATED), False)
    assert (row.cost, row.unpriced) == (micro(STATED), False)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize("cost", [None, 0], ids=["none-stated", "zero-stated"])
async def test_without_a_stated_cost_an_unpriced_model_stays_unpriced(
    upstream: Upstream, store: DumpStore, tmp_path: Path, tool: str, cost: float | None
) -> None:
    facts, row = await charged(OPENROUTER, reply(tool, cost), tool, upstream, store, tmp_path)
    assert (facts["cost_usd"], facts["unpriced"]) == (None, True)
    assert (row.cost, row.unpriced) == (0, True)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_without_a_stated_cost_a_priced_model_is_charged_at_the_maps_price(
    upstream: Upstream, store: DumpStore, tmp_path: Path, tool: str
) -> None:
    facts, row = await charged(MAPPED, reply(tool, 0), tool, upstream, store, tmp_path)
    assert facts["cost_usd"] == pytest.approx(1000 * 0.15e-6 + 1000 * 0.6e-6)
    assert (row.cost, row.unpriced) == (micro(1000 * 0.15e-6 + 1000 * 0.6e-6), False)


def billed_not_kept(end: str, tool: str) -> list[Reply]:
    """Replies the provider billed, stating their cost, that the call does not keep: an empty one (a stream: one
    first try and each of its retries), or one its content filter stopped."""
    if end == "filtered":
        filtered = Reply.text("", finish_reason="content_filter", usage=usage(STATED)) if tool == "complete" else (
            Reply.stream(["Once upon "], finish_reason="content_filter", usage=usage(STATED))
        )
        return [filtered]
    if tool == "complete":
        return [Reply.text("", usage=usage(STATED))]
    return [Reply.stream([], usage=usage(STATED)) for _ in range(1 + FAST_RETRY.stream_empty_retries)]


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize("end", ["empty", "filtered"])
async def test_a_failed_call_is_charged_the_cost_its_billed_replies_state(
    upstream: Upstream, store: DumpStore, tmp_path: Path, end: str, tool: str
) -> None:
    """Each reply the call did not keep was billed what its upstream stated: the failed call is charged that, in
    its row and its result's `charged`, on a model with no price as on one with a price."""
    provider = LiteLLMProvider(
        model=OPENROUTER, api_key="sk-x", api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, default_model=OPENROUTER, spend=spend)
    replies = billed_not_kept(end, tool)
    upstream.script(*replies)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(tool, {"prompt": "hello", "max_retries": 0})
    assert failed.is_error and failed.structured_content is not None, text_of(failed)
    assert len(upstream.chat_requests()) == len(replies)
    n = len(replies)
    assert failed.structured_content["charged"] == {
        "input_tokens": n * 1000, "output_tokens": n * 1000, "cost_usd": pytest.approx(n * STATED), "estimated": False,
    }  # fmt: skip
    [row] = spend.settled().calls(EPOCH)
    assert (row.input_tokens, row.output_tokens, row.cost, row.unpriced) == (
        n * 1000, n * 1000, micro(n * STATED), False,
    )  # fmt: skip


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_an_answer_after_a_billed_reply_stating_its_cost_is_charged_that_cost(
    upstream: Upstream, store: DumpStore, tmp_path: Path, tool: str
) -> None:
    """An empty reply stating its cost, retried, then an answer stating none on a model with no price: the call
    is charged the cost stated for the reply it did not keep, not recorded unpriced at 0."""
    empty = Reply.text("", usage=usage(STATED)) if tool == "complete" else Reply.stream([], usage=usage(STATED))
    provider = LiteLLMProvider(
        model=OPENROUTER, api_key="sk-x", api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, default_model=OPENROUTER, spend=spend)
    upstream.script(empty, reply(tool, None))
    async with connect(server, "legacy") as c:
        result = await c.call_tool(tool, {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    facts = call_facts(result)
    assert (facts["cost_usd"], "unpriced" in facts, facts["attempts"]) == (pytest.approx(STATED), False, 2)
    [row] = spend.settled().calls(EPOCH)
    assert (row.input_tokens, row.output_tokens, row.cost, row.unpriced) == (2000, 2000, micro(STATED), False)


@pytest.mark.parametrize("cost", [STATED, None], ids=["cost-stated", "no-cost"])
async def test_a_stream_whose_deadline_runs_out_after_its_usage_came_is_charged_that_usage(
    upstream: Upstream, store: DumpStore, tmp_path: Path, cost: float | None
) -> None:
    """The upstream sends some text with its usage (and, here or not, its cost), then stalls past the caller's
    `deadline_s`: it billed that usage, so the call is charged it (at the cost stated, if any), not litellm's
    count of the prompt and the text."""
    with_usage = {**json.loads(json.dumps(Reply.stream(["Once "]).chunks[0])), "usage": usage(cost)}
    stalled = Reply.stream(
        ["Once ", f"data: {json.dumps(with_usage)}\n\n".encode(), "upon"], hold_after=2, finish_reason=None
    )
    spend, server = serving(OPENROUTER, upstream, store, tmp_path)
    upstream.script(stalled)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("stream_complete", {"prompt": "hello", "deadline_s": 1.0})
    assert failed.is_error and failed.structured_content is not None, text_of(failed)
    assert "deadline" in text_of(failed)
    assert failed.structured_content["charged"] == {
        "input_tokens": 1000, "output_tokens": 1000, "estimated": False,
        "cost_usd": pytest.approx(STATED) if cost else None, **({} if cost else {"unpriced": True}),
    }  # fmt: skip
    [row] = spend.settled().calls(EPOCH)
    assert (row.input_tokens, row.output_tokens, row.cost, row.unpriced, row.estimated) == (
        1000, 1000, micro(cost or 0), not cost, False,
    )  # fmt: skip


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_retry_after_a_reply_stating_its_cost_is_held_for_it_on_an_unpriced_model(
    upstream: Upstream, store: DumpStore, tmp_path: Path, tool: str
) -> None:
    """A daily budget of $0.01 that allows unpriced calls, a model with no price (its worst case holds nothing)
    and an empty reply that states it cost $0.0123: that is owed before the retry, which the budget then has no
    room for, so the retry is not sent and the call is charged the cost stated."""
    empty = Reply.text("", usage=usage(STATED)) if tool == "complete" else Reply.stream([], usage=usage(STATED))
    provider = LiteLLMProvider(
        model=OPENROUTER, api_key="sk-x", api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    budgets = Budgets.from_settings(
        day=0.01, month=None, section={"unpriced": "allow"}, names={"caller": ["local"], "model": [OPENROUTER]}
    )
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    server = mcp_server(provider, store, default_model=OPENROUTER, spend=spend)
    upstream.script(empty, reply(tool, None))
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(tool, {"prompt": "hello"})
    assert failed.is_error and "retry was not sent" in text_of(failed), text_of(failed)
    assert len(upstream.chat_requests()) == 1
    [row] = spend.settled().calls(EPOCH)
    assert (row.input_tokens, row.output_tokens, row.cost, row.unpriced) == (1000, 1000, micro(STATED), False)
