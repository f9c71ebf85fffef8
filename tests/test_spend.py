"""Spend over MCP: the ledger and the budgets, through the SDK's real Client, litellm's real HTTP path and a
real SQLite file (the Redis backend: test_spend_redis.py).

Prices come from litellm's cost map for gpt-4o-mini ($0.15 / $0.60 per million tokens); the scripted
upstream reports the usage.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore

from hive_mcp.provider import LiteLLMProvider
from hive_mcp.spend import Budget, BudgetError, Budgets, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import CallRecord, Reservation
from tests.clients import MODEL, connect, mcp_server, text_of
from harness.processes import child_env
from harness.upstream import Reply, Upstream

IN, OUT = 0.15e-6, 0.6e-6  # litellm's map for gpt-4o-mini, USD per token


class Clock:
    """An injected clock: the test moves it."""

    def __init__(self, when: datetime) -> None:
        self.now = when

    def __call__(self) -> datetime:
        return self.now


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def make(
    provider: LiteLLMProvider, store: DumpStore, tmp_path: Path, budgets: Budgets, clock: Clock | None = None
) -> tuple[MCPServer, Spend]:
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    if clock is not None:
        spend.clock = clock
    return mcp_server(provider, store, spend=spend), spend


def overall(day: float | None = None, month: float | None = None, **section: Any) -> Budgets:
    return Budgets.from_settings(day=day, month=month, section=section, names={"caller": ["local"], "model": [MODEL]})


def worst_case(provider: LiteLLMProvider, prompt: str, max_tokens: int) -> int:
    counted = provider.count_tokens([{"role": "user", "content": prompt}], MODEL)
    assert counted is not None
    return micro(counted * IN + max_tokens * OUT)


async def test_the_price_comes_from_litellms_map_and_the_call_is_in_the_ledger(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    assert provider.price(MODEL) == pytest.approx((IN, OUT))
    server, spend = make(provider, store, tmp_path, Budgets())
    upstream.script(Reply.text("hi", usage=usage(1000, 500)))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    assert "budget_remaining_usd" not in result.structured_content  # no budget applies
    [row] = spend.settled().totals("2000-01-01")
    assert (row.caller, row.group, row.calls, row.input_tokens, row.output_tokens) == ("local", MODEL, 1, 1000, 500)
    assert row.cost == micro(1000 * IN + 500 * OUT) == 450
    [call] = spend.settled().calls(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert call.deployment and not call.unpriced and call.cost == 450


async def test_an_exhausted_budget_refuses_before_any_upstream_request(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    server, _ = make(provider, store, tmp_path, overall(day=0.0001), Clock(datetime(2026, 12, 1, 15, tzinfo=timezone.utc)))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "max_tokens": 1000})
    assert result.is_error
    text = text_of(result)
    assert "overall daily budget of $0.000100" in text and "$0.000100 left" in text
    assert "resets at 2026-12-02T00:00:00Z" in text and "no request was sent" in text
    assert upstream.chat_requests() == []


async def test_the_unused_part_of_a_reservation_returns(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    budgets = overall(day=1.0)
    server, spend = make(provider, store, tmp_path, budgets)
    seen: dict[str, tuple[int, int]] = {}
    reserve = spend.backend.reserve

    def held(r: Any, b: list[Budget]) -> dict[str, int]:
        left = reserve(r, b)
        seen.update(spend.backend.state(b, r.start))  # while the call is in flight
        return left

    spend.backend.reserve = held  # type: ignore[method-assign]
    upstream.script(Reply.text("hi", usage=usage(10, 20)))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "max_tokens": 1000})
    assert not result.is_error, text_of(result)
    wc = worst_case(provider, "hello", 1000)
    assert seen["all:day"] == (0, wc)  # the whole worst case held during the call
    actual = micro(10 * IN + 20 * OUT)
    now = spend.clock()
    assert spend.settled().state(budgets.items, now)["all:day"] == (actual, 0)  # settled: the rest came back
    assert call_facts(result)["budget_remaining_usd"] == pytest.approx((micro(1.0) - actual) / 1e6)


async def test_ten_concurrent_calls_that_fit_alone_but_three_together(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    max_tokens = 2000
    wc = worst_case(provider, "hello", max_tokens)
    counted = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL)
    # The upstream bills the worst case: a settled call leaves no headroom for a later one.
    upstream_reply = Reply.text("hi", usage=usage(counted or 0, max_tokens))
    upstream.script(*[upstream_reply] * 10)
    server, spend = make(provider, store, tmp_path, overall(day=3.5 * wc / 1e6))
    results: list[Any] = []
    async with connect(server, "legacy") as c:

        async def one() -> None:
            results.append(await c.call_tool("complete", {"prompt": "hello", "max_tokens": max_tokens}))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
    ok = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(ok) == 3 and len(refused) == 7, [text_of(r) for r in refused]
    assert all("overall daily budget" in text_of(r) for r in refused)
    assert len(upstream.chat_requests()) == 3
    spent, held = spend.settled().state(spend.budgets.items, spend.clock())["all:day"]
    assert held == 0 and spent <= 3.5 * wc


async def test_days_and_months_roll_over_in_utc(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    wc = worst_case(provider, "hello", 1000)
    clock = Clock(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    budgets = overall(day=1.5 * wc / 1e6, month=2.5 * wc / 1e6)
    server, _ = make(provider, store, tmp_path, budgets, clock)
    counted = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL) or 0
    upstream.script(*[Reply.text("hi", usage=usage(counted, 1000))] * 3)

    async def call(c: Any) -> Any:
        return await c.call_tool("complete", {"prompt": "hello", "max_tokens": 1000})

    async with connect(server, "legacy") as c:
        first, day_refused = await call(c), await call(c)
        clock.now = datetime(2027, 1, 1, 0, 0, tzinfo=timezone.utc)  # a new day and a new month
        second = await call(c)
        clock.now = datetime(2027, 1, 2, 0, 0, tzinfo=timezone.utc)  # a new day, the same month
        third = await call(c)
        clock.now = datetime(2027, 1, 3, 0, 0, tzinfo=timezone.utc)  # room today, none left this month
        month_refused = await call(c)
    assert not first.is_error and not second.is_error and not third.is_error
    assert day_refused.is_error and "resets at 2027-01-01T00:00:00Z" in text_of(day_refused)
    assert month_refused.is_error and "monthly budget" in text_of(month_refused)
    assert "resets at 2027-02-01T00:00:00Z" in text_of(month_refused)
    assert len(upstream.chat_requests()) == 3


async def test_an_unpriced_model_under_a_budget_is_refused_unless_allowed(
    store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    name = "openai/house-model-x"  # not in litellm's map
    provider = LiteLLMProvider(model=name, api_key="sk-test", api_base=upstream.base_url, dump_store=store)
    assert provider.price(name) is None
    denied = Budgets.from_settings(day=1, month=None, section={}, names={"caller": ["local"], "model": [name]})
    allowed = Budgets.from_settings(day=1, month=None, section={"unpriced": "allow"},
                                    names={"caller": ["local"], "model": [name]})  # fmt: skip
    results = []
    for i, budgets in enumerate((denied, allowed)):
        spend = Spend(SQLiteBackend(tmp_path / f"s{i}.sqlite3"), budgets, provider)
        server = mcp_server(provider, store, default_model=name, spend=spend)
        async with connect(server, "legacy") as c:
            results.append(await c.call_tool("complete", {"prompt": "hello"}))
    assert results[0].is_error and "no known price" in text_of(results[0])
    assert not results[1].is_error, text_of(results[1])
    assert len(upstream.chat_requests()) == 1
    [call] = spend.settled().calls(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert call.unpriced and call.cost == 0


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"day": -1}, "budgets.day"),
        ({"month": math.nan}, "budgets.month"),
        ({"callers": {"mallory": {"day": 1}}}, "budgets.callers.mallory"),
        ({"models": {"nope": {"day": 1}}}, "budgets.models.nope"),
        ({"models": {MODEL: {"week": 1}}}, f"budgets.models.{MODEL}.week"),
        ({"unpriced": "maybe"}, "budgets.unpriced"),
        ({"callers": {"local": {"day": "five"}}}, "budgets.callers.local.day"),
        ({"callers": {"local": {"day": 1e300}}}, "budgets.callers.local.day"),  # its micro-USD overflow the ledger
    ],
)
def test_a_bad_budget_is_one_line_naming_it(section: dict[str, Any], named: str) -> None:
    with pytest.raises(BudgetError) as err:
        Budgets.from_settings(day=None, month=None, section=section, names={"caller": ["local"], "model": [MODEL]})
    assert str(err.value).startswith(named + ":") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HIVE_MCP_BUDGETS": '{"callers": {"mallory": {"day": 1}}}'}, "budgets.callers.mallory: not a known caller"),
        ({"HIVE_MCP_BUDGET_USD_DAY": "-3"}, "HIVE_MCP_BUDGET_USD_DAY"),
        ({"HIVE_MCP_BUDGET_USD_MONTH": "nan"}, "HIVE_MCP_BUDGET_USD_MONTH"),
    ],
)
def test_a_bad_budget_refuses_to_start(tmp_path: Path, env: dict[str, str], named: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "hive_mcp"], env=child_env(HIVE_HOME=str(tmp_path), **env), cwd=tmp_path,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], run.stderr


def test_max_budget_is_the_overall_monthly_one_and_the_variable_wins() -> None:
    b = Budgets.from_settings(day=None, month=None, section={"day": 2}, max_budget=30.0)
    assert {x.id: x.limit for x in b.items} == {"all:day": 2_000_000, "all:month": 30_000_000}
    b = Budgets.from_settings(day=1, month=5, section={"day": 2}, max_budget=30.0)
    assert {x.id: x.limit for x in b.items} == {"all:day": 1_000_000, "all:month": 5_000_000}
    b = Budgets.from_settings(day=None, month=None, section={}, max_budget=3.0, max_budget_duration="1d")
    assert {x.id: x.limit for x in b.items} == {"all:day": 3_000_000}


async def test_hive_usage_shows_local_everything_and_the_budgets(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    import json

    clock = Clock(datetime(2026, 12, 1, 15, tzinfo=timezone.utc))
    server, _ = make(provider, store, tmp_path, overall(day=1, month=10), clock)
    upstream.script(Reply.text("hi", usage=usage(1000, 500)))
    async with connect(server, "legacy") as c:
        await c.call_tool("complete", {"prompt": "hello"})
        listed = [r.uri for r in (await c.list_resources()).resources]
        report = json.loads((await c.read_resource("hive://usage")).contents[0].text)
    assert "hive://usage" in listed
    assert report["caller"] is None and report["today"]["by_model"] == {MODEL: 0.00045}
    assert report["month"]["cost_usd"] == report["last_30_days"]["cost_usd"] == 0.00045
    day = next(b for b in report["budgets"] if b["budget"] == "all:day")
    assert (day["limit_usd"], day["spent_usd"], day["reserved_usd"]) == (1, 0.00045, 0)
    assert day["resets"].startswith("2026-12-02T00:00:00")


def test_usage_changes_are_told_at_most_once_per_interval() -> None:
    import threading

    from hive_mcp.listeners import Throttle

    now = [100.0]
    throttle = Throttle(interval_s=1.0, monotonic=lambda: now[0])
    told: list[float] = []
    second = threading.Event()

    def listener() -> None:
        told.append(now[0])
        if len(told) == 2:
            second.set()

    throttle.add_listener(listener)
    throttle.changed()  # told at once
    throttle.changed()  # within the interval: deferred
    throttle.changed()  # ... and coalesced with the one before
    assert told == [100.0]
    now[0] = 101.0
    assert second.wait(10)  # the deferred one arrives (the timer runs on real time, bounded here)
    assert told == [100.0, 101.0]


async def test_list_models_and_the_dashboard_show_spend_today(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    import json

    server, _ = make(provider, store, tmp_path, overall(day=1))
    upstream.script(Reply.text("hi", usage=usage(1000, 500)))
    async with connect(server, "legacy") as c:
        before = (await c.call_tool("list_models", {})).structured_content
        await c.call_tool("complete", {"prompt": "hello"})
        after = (await c.call_tool("list_models", {})).structured_content
        board = await c.call_tool("dashboard", {"view": "spend"})
    assert [g["spent_today_usd"] for g in before["groups"]] == [0.0]
    assert [(g["name"], g["spent_today_usd"]) for g in after["groups"]] == [(MODEL, 0.00045)]
    spend = json.loads(board.content[0].text) if board.structured_content is None else board.structured_content
    assert "0.00045" in json.dumps(spend)


async def test_streamed_and_conversation_calls_are_metered_too(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    from hive_mcp.conversations.sqlite_store import SQLiteStore

    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), overall(day=1), provider)
    conversations = SQLiteStore(tmp_path / "conv.sqlite3")
    server = mcp_server(provider, store, spend=spend, conversations=conversations)
    upstream.script(Reply.text("hi", usage=usage(1000, 500)), Reply.stream(["a", "b"]))
    async with connect(server, "legacy") as c:
        first = await c.call_tool("complete", {"prompt": "hello"})
        cid = first.structured_content["conversation_id"]
        streamed = await c.call_tool("stream_complete", {"prompt": "more", "conversation_id": cid})
    assert not streamed.is_error, text_of(streamed)
    assert 0 < call_facts(streamed)["budget_remaining_usd"] < call_facts(first)["budget_remaining_usd"]
    calls = spend.settled().calls(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert [c.conversation_id for c in calls] == [cid, cid]
    assert spend.settled().state(spend.budgets.items, spend.clock())["all:day"][1] == 0


async def test_conversations_and_the_ledger_name_a_call_s_model_alike(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """`hive-mcp conversations list` and `hive-mcp usage` show one name for one model: the one the call
    named (its group), not the one the upstream answered with."""
    from hive_mcp.conversations.sqlite_store import SQLiteStore

    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), overall(day=1), provider)
    conversations = SQLiteStore(tmp_path / "conv.sqlite3")
    server = mcp_server(provider, store, spend=spend, conversations=conversations)
    upstream.script(Reply.text("hi", usage=usage(10, 5), model="gpt-4o-mini-2024-07-18"))
    async with connect(server, "legacy") as c:
        cid = (await c.call_tool("complete", {"prompt": "hello"})).structured_content["conversation_id"]
    async with conversations:
        models = (await conversations.get(cid)).thread.models
    groups = {r.group for r in spend.settled().totals("2000-01-01")}
    assert models == [MODEL] and groups == {MODEL}


def test_budgets_from_the_config_section(tmp_path: Path) -> None:
    from hive_mcp.serve import load_models
    from hive_mcp.settings import Settings
    from hive_mcp.spend.setup import configured_budgets

    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: smart\n    litellm_params: {model: openai/gpt-4o}\n"
        "  - model_name: cheap\n    litellm_params: {model: openai/gpt-4o-mini}\n"
        "litellm_settings: {max_budget: 100}\n"
        "hive_mcp:\n  admins: [alice]\n"
        "  budgets:\n    day: 10\n    callers: {alice: {day: 5}}\n    models: {smart: {month: 50, unpriced: allow}}\n"
    )
    settings, cfg = load_models(Settings(config=config), environ={})
    assert settings.admins == ("alice",)
    from hive_mcp.tokens import bearer_tokens

    b = configured_budgets(settings, cfg, bearer_tokens("alice:tok-alice-1", None))
    assert {x.id: (x.limit, x.allow_unpriced) for x in b.items} == {
        "all:day": (10_000_000, False), "all:month": (100_000_000, False),
        "caller:alice:day": (5_000_000, False), "model:smart:month": (50_000_000, True),
    }  # fmt: skip
    bad = Settings(config=config, budgets={"models": {"gpt-4o": {"day": 1}}})
    settings, cfg = load_models(bad, environ={})
    with pytest.raises(BudgetError, match=r"^budgets.models.gpt-4o: not a known model group; known: cheap, smart$"):
        configured_budgets(settings, cfg, [])


def test_a_group_is_priced_at_its_dearest_deployment_and_reaches_its_fallbacks(tmp_path: Path) -> None:
    from hive_mcp.llms import load_config
    from hive_mcp.provider.routing import ModelRouter

    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: cheap\n    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-x}\n"
        "  - model_name: cheap\n    litellm_params: {model: openai/house-1, api_key: sk-x,"
        " input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n"
        "  - model_name: big\n    litellm_params: {model: openai/gpt-4o, api_key: sk-x}\n"
        "  - model_name: alone\n    litellm_params: {model: openai/house-2, api_key: sk-x}\n"
        "  - model_name: free\n    litellm_params: {model: openai/house-3, api_key: sk-x}\n"
        "    model_info: {input_cost_per_token: 0, output_cost_per_token: 0}\n"
        "router_settings:\n  fallbacks: [{cheap: [big]}]\n"
    )
    config = load_config(path, {})
    provider = LiteLLMProvider(model="cheap", router=ModelRouter(config), dump_store=False)
    assert provider.price("big") == pytest.approx((2.5e-6, 10e-6))  # litellm's map for gpt-4o
    assert provider.price("cheap") == pytest.approx((1e-6, 2e-6))  # house-1, dearer than gpt-4o-mini
    assert provider.reachable("cheap") == ["cheap", "big"]  # big is priced apart, at its own prices
    assert provider.price("alone") is None  # no price anywhere: unpriced
    assert provider.price("free") == (0, 0)  # the config says it is free


async def test_shutdown_releases_the_reservations_in_flight(provider: LiteLLMProvider, tmp_path: Path) -> None:
    budgets = overall(day=1)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    ticket = await spend.reserve("local", MODEL, [{"role": "user", "content": "hi"}], system="", max_tokens=100,
                                 deadline=600)  # fmt: skip
    assert spend.backend.state(budgets.items, spend.clock())["all:day"] == (0, ticket.reservation.amount)
    spend.release_all()
    assert spend.backend.state(budgets.items, spend.clock())["all:day"] == (0, 0)
    await spend.release(ticket)  # the call's own release after shutdown's is a no-op


async def test_the_answer_does_not_wait_for_the_ledger_and_the_hold_stays_until_its_row_is_written(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """The ledger's write follows the answer: a backend that has not taken the row yet does not hold the
    answer back; until it has, the call's reservation still counts against the budget, so a second call that
    would pass it is refused; once the row is in, the hold is the call's cost and the second call fits."""
    writing, go_on = threading.Event(), threading.Event()

    class Slow(SQLiteBackend):  # the real SQLite ledger; its writes wait until the test says
        def settle(self, r: Reservation, record: CallRecord) -> None:
            writing.set()
            assert go_on.wait(30)
            super().settle(r, record)

    worst = worst_case(provider, "hello", 1000)
    spend = Spend(Slow(tmp_path / "spend.sqlite3"), overall(day=1.5 * worst / 1e6), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(Reply.text("hi", usage=usage(10, 5)), Reply.text("again", usage=usage(10, 5)))
    args = {"prompt": "hello", "max_tokens": 1000}
    try:
        async with connect(server, "legacy") as c:
            with anyio.fail_after(20):
                first = await c.call_tool("complete", args)
            assert not first.is_error, text_of(first)
            assert await anyio.to_thread.run_sync(writing.wait, 10)
            held = await c.call_tool("complete", args)
            assert held.is_error and "budget" in text_of(held), text_of(held)
            go_on.set()
            await anyio.to_thread.run_sync(spend.settled)
            second = await c.call_tool("complete", args)
            assert not second.is_error, text_of(second)
    finally:
        go_on.set()
    costs = [c.cost for c in spend.settled().calls(datetime(2000, 1, 1, tzinfo=timezone.utc))]
    assert costs == [micro(10 * IN + 5 * OUT)] * 2
