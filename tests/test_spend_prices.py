"""Zero is not a price: which models are priced, free or unpriced, the same in `list_models`, in results, in the
ledger and under a budget; before and after the first call. Through the SDK's real Client, litellm's real HTTP
path to a scripted upstream, a real SQLite ledger.

litellm 1.110.2's bundled map lists claude-sonnet-4-20250514 at 0/0: a gap in the map, not a free model.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore

from hive_mcp.llms import load_config
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.facts import ConfigCatalogue
from hive_mcp.provider.routing import ModelRouter
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from tests.clients import connect, mcp_server, text_of
from tests.conftest import FAST_RETRY
from harness.upstream import Reply, Upstream

EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
ZERO_IN_THE_MAP = "anthropic/claude-sonnet-4-20250514"


def config_text(upstream: Upstream) -> str:
    base = f'api_base: "{upstream.base_url}", api_key: sk-x'
    return (
        "model_list:\n"
        f"  - model_name: zero\n    litellm_params: {{model: {ZERO_IN_THE_MAP}, api_base: \"{upstream.anthropic_base}\","
        " api_key: sk-x}\n"
        f"  - model_name: unknown\n    litellm_params: {{model: openai/house-2, {base}}}\n"
        f"  - model_name: marked\n    litellm_params: {{model: openai/house-3, {base}}}\n    model_info: {{free: true}}\n"
        f"  - model_name: given\n    litellm_params: {{model: openai/house-4, {base},"
        " input_cost_per_token: 0, output_cost_per_token: 0}\n"
        "  - model_name: local\n    litellm_params: {model: ollama/llama3}\n"
        f"  - model_name: mini\n    litellm_params: {{model: openai/gpt-4o-mini, {base}}}\n"
    )


def prices(listing: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    return {
        g["name"]: (g["input_cost_per_mtok"], g["output_cost_per_mtok"], g.get("unpriced", False))
        for g in listing["groups"]
    }


def routed(upstream: Upstream, store: DumpStore, tmp_path: Path, budgets: Budgets) -> tuple[Any, Spend, Any]:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(upstream))
    config = load_config(path, {})
    router = ModelRouter(config)
    catalogue = ConfigCatalogue(config)
    catalogue.attach(router)
    provider = LiteLLMProvider(model="mini", router=router, retry=FAST_RETRY, dump_store=store)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    return mcp_server(provider, store, default_model="mini", catalogue=catalogue, spend=spend), spend, provider


async def test_zero_and_unknown_are_unpriced_free_must_be_said_and_the_listing_never_changes(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    server, spend, provider = routed(upstream, store, tmp_path, Budgets())
    upstream.script(Reply.text("hi"), Reply.text("hi"))
    async with connect(server, "legacy") as c:
        before = prices((await c.call_tool("list_models", {})).structured_content)
        unknown = await c.call_tool("complete", {"prompt": "hello", "model": "unknown"})
        mini = await c.call_tool("complete", {"prompt": "hello", "model": "mini"})
        after = prices((await c.call_tool("list_models", {})).structured_content)
    assert before == after
    assert before["zero"] == before["unknown"] == (None, None, True)
    assert before["marked"] == before["given"] == before["local"] == (0.0, 0.0, False)
    assert before["mini"] == (0.15, 0.6, False)
    assert {g: provider.price(g) for g in ("zero", "unknown", "marked", "given", "local")} == {
        "zero": None, "unknown": None, "marked": (0, 0), "given": (0, 0), "local": (0, 0),
    }  # fmt: skip
    assert not unknown.is_error and not mini.is_error
    assert call_facts(unknown)["cost_usd"] is None and call_facts(unknown)["unpriced"] is True
    assert call_facts(mini)["cost_usd"] > 0 and "unpriced" not in call_facts(mini)
    flagged = [(c.group, c.unpriced) for c in spend.settled().calls(EPOCH)]
    assert flagged == [("unknown", True), ("mini", False)]


@pytest.mark.parametrize("group", ["zero", "unknown"])
async def test_a_zero_priced_model_under_a_budget_is_refused(
    upstream: Upstream, store: DumpStore, tmp_path: Path, group: str
) -> None:
    budgets = Budgets.from_settings(day=100, month=None, section={}, names={"caller": ["local"], "model": [group]})
    server, spend, _ = routed(upstream, store, tmp_path, budgets)
    upstream.script(Reply.anthropic("free?"), Reply.text("free?"))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "model": group})
    assert result.is_error and "no known price" in text_of(result) and "no request was sent" in text_of(result)
    assert upstream.chat_requests() == [] and spend.settled().calls(EPOCH) == []


async def test_without_a_config_an_unknown_model_is_unpriced_before_and_after_a_call(
    upstream: Upstream, store: DumpStore, tmp_path: Path
) -> None:
    from hive_mcp.provider.facts import DefaultCatalogue

    name = "openai/house-model-x"  # not in litellm's map
    provider = LiteLLMProvider(model=name, api_key="sk-x", api_base=upstream.base_url, dump_store=store)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, default_model=name, catalogue=DefaultCatalogue(name), spend=spend)
    upstream.script(Reply.text("hi"))
    async with connect(server, "legacy") as c:
        before = prices((await c.call_tool("list_models", {})).structured_content)
        result = await c.call_tool("complete", {"prompt": "hello"})
        after = prices((await c.call_tool("list_models", {})).structured_content)
    assert before == after == {name: (None, None, True)}
    assert call_facts(result)["cost_usd"] is None and call_facts(result)["unpriced"] is True
    [call] = spend.settled().calls(EPOCH)
    assert call.unpriced and call.cost == 0
