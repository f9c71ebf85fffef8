"""Which group a call is priced, counted, budgeted and recorded under, with a models config: a wildcard group
(called, or reached as a fallback) and a group named for its deployments' model. Real SQLite and valkey-server
ledgers, the SDK's real Client, litellm's real HTTP path to the scripted upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.spend import Budgets, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import Backend
from tests.clients import Progress, connect, mcp_server, text_of
from tests.conftest import FAST_RETRY
from tests.spend_calls import EPOCH, IN, MAX_TOKENS, OUT, cancel_once, held_by, requests_seen
from harness.upstream import Reply, Upstream

USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
# Text whose token count differs between litellm's default tokenizer and gpt-4o-mini's (o200k).
CYRILLIC = "Здравствуйте, как у вас дела сегодня? " * 5


def served(upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend, entries: str,
           section: dict[str, Any], default: str, **settings: Any) -> tuple[Any, Spend, LiteLLMProvider]:  # fmt: skip
    """A server over a config of `entries` (each deployment at the upstream) with the budgets of `section`."""
    path = tmp_path / "config.yaml"
    base = f'api_base: "{upstream.base_url}", api_key: sk-x'
    path.write_text("model_list:\n" + entries.format(base=base) + "".join(f"{k}: {v}\n" for k, v in settings.items()))
    config = load_config(path, {})
    provider = LiteLLMProvider(model=default, router=ModelRouter(config), retry=FAST_RETRY, dump_store=store)
    budgets = Budgets.from_settings(day=None, month=None, section=section,
                                    names={"caller": ["local"], "model": config.groups})  # fmt: skip
    spend = Spend(ledger, budgets, provider)
    return mcp_server(provider, store, default_model=default, spend=spend), spend, provider


FALLBACK_TO_WILDCARD = (
    "  - model_name: gpt-4o-mini\n    litellm_params: {{model: openai/gpt-4o-mini, {base}}}\n"
    '  - model_name: "*"\n    litellm_params: {{model: "openai/*", {base}}}\n'
)


@pytest.mark.parametrize("budget", [True, False], ids=["budget", "no-budget"])
async def test_a_fallback_to_a_wildcard_group_is_priced_for_the_model_called(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend, budget: bool
) -> None:
    """`gpt-4o-mini` fails and falls back to the wildcard group `*`, which sends the same model name: the hop is
    priced at gpt-4o-mini's prices, taken under a budget, and charged them, never as unpriced."""
    section = {"day": 1.0} if budget else {}
    server, spend, _ = served(upstream, store, tmp_path, ledger, FALLBACK_TO_WILDCARD, section, "gpt-4o-mini",
                              router_settings='{fallbacks: [{gpt-4o-mini: ["*"]}]}')  # fmt: skip
    upstream.script(Reply.error(503), Reply.text("the wildcard answered", usage=USAGE))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "max_retries": 0, "max_tokens": MAX_TOKENS})
    assert not result.is_error, text_of(result)
    assert [r.body["model"] for r in upstream.chat_requests()] == ["gpt-4o-mini"] * 2
    [call] = spend.settled().calls(EPOCH)
    assert (call.group, call.called, call.unpriced) == ("*", "gpt-4o-mini", False)
    assert call.cost == micro(10 * IN + 20 * OUT)


WILDCARD = '  - model_name: "openai/*"\n    litellm_params: {{model: "openai/*", {base}}}\n'


async def test_a_wildcard_groups_budget_holds_its_calls_under_the_group(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend
) -> None:
    """The rule: a call to a name a wildcard group takes is reserved, budgeted and recorded under that group
    (`openai/*`): the group's budget refuses the call its own recorded spend no longer fits."""
    counted = LiteLLMProvider(dump_store=False).count_tokens([{"role": "user", "content": "hello"}], "gpt-4o-mini")
    room = micro((counted or 0) * IN + MAX_TOKENS * OUT) + 10  # one call's worst case
    server, spend, _ = served(upstream, store, tmp_path, ledger, WILDCARD, {"models": {"openai/*": {"day": room / 1e6}}},
                              "openai/gpt-4o-mini")  # fmt: skip
    held = held_by(ledger, spend)
    upstream.script(Reply.text("ok", usage=USAGE), Reply.text("must not be reached"))
    args = {"prompt": "hello", "model": "openai/gpt-4o-mini", "max_tokens": MAX_TOKENS}
    async with connect(server, "legacy") as c:
        first = await c.call_tool("complete", args)
        second = await c.call_tool("complete", {**args, "model": "openai/gpt-4o"})
    assert not first.is_error, text_of(first)
    assert second.is_error and "model group openai/*'s daily budget" in text_of(second), text_of(second)
    assert len(upstream.chat_requests()) == 1
    assert held[0]["model:openai/*:day"] == (0, room - 10)
    [call] = spend.settled().calls(EPOCH)
    assert (call.group, call.called, call.deployment) == ("openai/*", "openai/*", "openai/gpt-4o-mini")
    assert spend.settled().state(list(spend.budgets.items), spend.clock())["model:openai/*:day"] == (call.cost, 0)


def test_a_budget_on_a_model_a_wildcard_group_takes_is_refused_at_start(tmp_path: Path) -> None:
    """Budgets name groups: one on `openai/gpt-4o-mini`, which only the wildcard group `openai/*` takes, is a
    configuration error naming the field, not a budget that never sees the spend."""
    from hive_mcp.spend.budgets import BudgetError

    with pytest.raises(BudgetError) as err:
        Budgets.from_settings(day=None, month=None, section={"models": {"openai/gpt-4o-mini": {"day": 1}}},
                              names={"caller": ["local"], "model": ["openai/*"]})  # fmt: skip
    assert "openai/gpt-4o-mini" in str(err.value) and "\n" not in str(err.value)


FAST = "  - model_name: fast\n    litellm_params: {{model: openai/gpt-4o-mini, {base}}}\n"


@pytest.mark.parametrize("end", ["reserved", "complete-cancelled", "stream-cancelled"])
async def test_a_groups_tokens_are_counted_with_its_deployments_model(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend, end: str
) -> None:
    """`fast` names gpt-4o-mini: its prompt is counted with gpt-4o-mini's tokenizer (not litellm's default, which
    counts this text at about twice as many tokens) for the reservation and for a call cut short."""
    server, spend, _ = served(upstream, store, tmp_path, ledger, FAST, {"day": 1.0}, "fast")
    held = held_by(ledger, spend)
    counter = LiteLLMProvider(dump_store=False)
    prompt = counter.count_tokens([{"role": "user", "content": CYRILLIC}], "openai/gpt-4o-mini") or 0
    default = counter.count_tokens([{"role": "user", "content": CYRILLIC}], "fast") or 0
    assert 0 < prompt < default  # the premise: the two tokenizers differ on this text
    words = [f"{w} " for w in CYRILLIC.split()]
    args = {"prompt": CYRILLIC, "model": "fast", "max_tokens": MAX_TOKENS}
    progress = Progress()
    async with connect(server, "legacy") as c:
        if end == "reserved":
            upstream.script(Reply.text("ok", usage=USAGE))
            assert not (await c.call_tool("complete", args)).is_error
        elif end == "complete-cancelled":
            upstream.script(Reply.hang())
            await cancel_once(c, "complete", args, requests_seen(upstream))
        else:
            upstream.script(Reply.stream(words, hold_after=10))

            async def relayed() -> None:
                await progress.wait_for(lambda _: progress.text == "".join(words[:10]))

            await cancel_once(c, "stream_complete", args, relayed, progress)
        upstream.release()
    assert held[0]["all:day"] == (0, micro(prompt * IN + MAX_TOKENS * OUT))
    if end != "reserved":
        [call] = spend.settled().calls(EPOCH)
        out = counter.count_text(progress.text, "openai/gpt-4o-mini") or 0 if progress.text else 0
        assert call.estimated and (call.input_tokens, call.output_tokens) == (prompt, out)
        assert call.cost == micro(prompt * IN + out * OUT)
