"""A retry after a reply the provider billed and the call did not keep (an empty one) reserves again: the call
then owes that reply plus the next attempt's worst case, which its first reservation did not cover. On a real
SQLite file and on a real valkey-server, through the SDK's real Client and litellm's real HTTP path.

Every reply here bills exactly one worst case (`W`: the prompt by litellm's count and `MAX_TOKENS`), so a call
that retries once owes 2 W; the budgets are counted in W.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.spend import Budgets, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import Backend
from tests.clients import MODEL, connect, mcp_server, text_of, until
from tests.spend_calls import EPOCH, IN, MAX_TOKENS, OUT, held_by
from harness.upstream import Reply, Upstream


def worst_case(provider: LiteLLMProvider) -> tuple[int, dict[str, int], Any]:
    """One call's worst case in micro-USD, the usage of a reply that bills exactly that, and what `n` such
    replies cost together (rounded up once, as the ledger charges a call)."""
    counted = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL)
    assert counted is not None
    usage = {"prompt_tokens": counted, "completion_tokens": MAX_TOKENS, "total_tokens": counted + MAX_TOKENS}
    return micro(counted * IN + MAX_TOKENS * OUT), usage, lambda n: micro(n * (counted * IN + MAX_TOKENS * OUT))


def daily(limit: int) -> Budgets:
    return Budgets.from_settings(day=limit / 1e6, month=None, section={}, names={"caller": ["local"], "model": [MODEL]})


def empty(tool: str, usage: dict[str, int]) -> Reply:
    """A reply with no text that the provider bills: retried."""
    return Reply.stream([], usage=usage) if tool == "stream_complete" else Reply.text("", usage=usage)


def answer(tool: str, usage: dict[str, int], text: str = "hi") -> Reply:
    return Reply.stream([text], usage=usage) if tool == "stream_complete" else Reply.text(text, usage=usage)


def state(spend: Spend) -> tuple[int, int]:
    """(spent, held) of the daily budget, every settled call written."""
    return spend.settled().state(list(spend.budgets.items), spend.clock())["all:day"]


async def one(c: Any, tool: str, max_retries: int = 1) -> types.CallToolResult:
    return await c.call_tool(tool, {"prompt": "hello", "max_tokens": MAX_TOKENS, "max_retries": max_retries})


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_concurrent_calls_that_retry_a_billed_reply_stay_within_the_budget(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend, tool: str
) -> None:
    """The audit's race: a budget of 3.5 worst cases, ten calls at once, each answered first by an empty reply
    the provider bills. Three are admitted (three worst cases held); their empty replies are held by the
    upstream until the other seven were refused, then let go together. Each retry needs one more worst case
    held, which the budget does not have: all three stop, charged their billed reply. Without the retry's
    reservation the three retried and spent 6 worst cases against 3.5."""
    w, usage, replies = worst_case(provider)
    limit = w * 7 // 2
    spend = Spend(ledger, daily(limit), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(*[empty(tool, usage).held()] * 3, *[answer(tool, usage)] * 7)
    results: list[types.CallToolResult] = []
    async with connect(server, "legacy") as c:

        async def call() -> None:
            results.append(await one(c, tool))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
            await until(lambda: len(upstream.chat_requests()) == 3 and len(results) == 7, "3 sent, 7 refused")
            upstream.release()
    spent, held = state(spend)
    assert spent <= limit, f"spent {spent} micro-USD against a budget of {limit}"
    assert (spent, held) == (3 * replies(1), 0)
    stopped = [text_of(r) for r in results if r.is_error and "retry" in text_of(r)]
    assert len(stopped) == 3 and len(upstream.chat_requests()) == 3, [text_of(r) for r in results]
    assert all(r.is_error for r in results)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_retry_with_room_reserves_again_and_answers(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend, tool: str
) -> None:
    w, usage, replies = worst_case(provider)
    spend = Spend(ledger, daily(2 * w + 10), provider)
    holds = held_by(ledger, spend)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(empty(tool, usage), answer(tool, usage))
    async with connect(server, "legacy") as c:
        result = await one(c, tool)
    assert not result.is_error and text_of(result) == "hi"
    # The call's worst case, then the billed reply held beside it before the retry was sent.
    assert [h["all:day"] for h in holds] == [(0, w), (0, 2 * w)]
    [call] = spend.settled().calls(EPOCH)
    assert call.cost == replies(2) and not call.estimated
    assert state(spend) == (replies(2), 0)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_retry_without_room_stops_the_call_charged_its_billed_reply(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend, tool: str
) -> None:
    w, usage, replies = worst_case(provider)
    spend = Spend(ledger, daily(w + 10), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(empty(tool, usage), answer(tool, usage, "must not be reached"))
    async with connect(server, "legacy") as c:
        result = await one(c, tool)
    text = text_of(result)
    assert result.is_error and "\n" not in text, text
    assert text.startswith(f"budget error from model {MODEL} after 1 attempt: "), text
    assert "overall daily budget" in text and "retry was not sent" in text, text
    assert result.structured_content is not None and result.structured_content["error"] == "budget"
    assert len(upstream.chat_requests()) == 1
    [call] = spend.settled().calls(EPOCH)
    assert call.cost == w and not call.estimated
    assert state(spend) == (w, 0)


async def test_a_retry_refused_after_one_that_fitted_releases_the_extra_hold(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    """Two empty replies: the first retry fits (a second worst case held beside the call's), the second does
    not (a third would be needed). The call stops charged both billed replies, and every hold it made goes."""
    w, usage, replies = worst_case(provider)
    spend = Spend(ledger, daily(2 * w + 10), provider)
    holds = held_by(ledger, spend)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(empty("complete", usage), empty("complete", usage), Reply.text("must not be reached"))
    async with connect(server, "legacy") as c:
        result = await one(c, "complete", max_retries=2)
    assert result.is_error and "after 2 attempts" in text_of(result), text_of(result)
    assert len(upstream.chat_requests()) == 2
    assert [h["all:day"] for h in holds] == [(0, w), (0, 2 * w)]
    [call] = spend.settled().calls(EPOCH)
    assert call.cost == replies(2)
    assert state(spend) == (replies(2), 0)
