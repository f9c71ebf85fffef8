"""Spend through `python -m hive_mcp` over HTTP: callers named by their tokens, the token never stored; the
budgets on /metrics."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from hive_mcp.mcp.results import call_facts
from hive_mcp.spend import SQLiteBackend
from hive_mcp.spend.budgets import Budget, micro
from hive_mcp.spend.ledger import Reservation
from hive_mcp.spend.sqlite_backend import default_spend_path
from harness.upstream import Reply, Upstream
from tests.clients import text_of
from tests.conftest import MODEL
from tests.servers import HttpServer, Session, authed_target, server_env

ALICE = "tok-alice-0123456789abcdef"
BARE = "tok-bare-0123456789abcdef"
CAROL = "tok-carol-0123456789abcdef"
GAUGES_S = 30.0
"""Bound on the wait for the budget gauges to show a change (published within a second of it)."""


def usage_of(session: Session) -> dict:
    result = session.run(lambda c: c.read_resource("hive://usage"))
    return json.loads(result.contents[0].text)


def test_callers_are_named_by_their_tokens_and_budgets_follow_the_name(upstream: Upstream, tmp_path: Path) -> None:
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    bare_name = hashlib.sha256(BARE.encode()).hexdigest()[:8]
    env.update(
        HIVE_HOME=str(tmp_path / "home"),
        HIVE_MCP_AUTH_TOKEN=f"alice:{ALICE},{BARE},carol:{CAROL}",
        HIVE_MCP_ADMINS="alice",
        HIVE_MCP_BUDGETS=f'{{"callers": {{"alice": {{"day": 0.0001}}, "{bare_name}": {{"day": 5}}}}}}',
    )
    upstream.script(Reply.text("hi", usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    server = HttpServer("http", env, tmp_path, "named")
    alice = bare = carol = None
    try:
        server.wait_loaded()  # the calls are bounded as calls, not as litellm's import
        alice = Session(authed_target(server, ALICE), "legacy")
        bare = Session(authed_target(server, BARE), "legacy")
        refused = alice.run(lambda c: c.call_tool("complete", {"prompt": "hi", "max_tokens": 1000}))
        served = bare.run(lambda c: c.call_tool("complete", {"prompt": "hi", "max_tokens": 1000}))
        carol = Session(authed_target(server, CAROL), "legacy")
        seen = {"alice": usage_of(alice), "bare": usage_of(bare), "carol": usage_of(carol)}
    finally:
        for session in (alice, bare, carol):
            if session is not None:
                session.close()
        assert server.terminate() == 0, server.stderr()
    assert refused.is_error and "caller alice's daily budget" in text_of(refused)
    assert not served.is_error, text_of(served)
    assert call_facts(served)["budget_remaining_usd"] < 5
    assert len(upstream.chat_requests()) == 1
    # hive://usage: the admin sees everyone, the others only themselves (and only their own budgets).
    cost = micro(call_facts(served)["cost_usd"]) / 1e6  # the ledger keeps whole micro-USD, rounded up
    assert seen["alice"]["caller"] is None and seen["alice"]["today"]["by_caller"] == {bare_name: cost}
    assert {b["budget"] for b in seen["alice"]["budgets"]} == {"caller:alice:day", f"caller:{bare_name}:day"}
    assert seen["bare"]["caller"] == bare_name and seen["bare"]["today"]["by_caller"] == {bare_name: cost}
    assert [b["budget"] for b in seen["bare"]["budgets"]] == [f"caller:{bare_name}:day"]
    assert seen["bare"]["budgets"][0]["spent_usd"] == cost and seen["bare"]["budgets"][0]["reserved_usd"] == 0
    assert seen["carol"]["today"] == {"cost_usd": 0, "calls": 0, "unpriced_calls": 0, "by_model": {},
                                      "by_caller": {}, "calls_by_model": {}, "calls_by_caller": {}} and seen["carol"]["budgets"] == []  # fmt: skip
    db = tmp_path / "home" / "hive-mcp-spend.sqlite3"
    with sqlite3.connect(db) as conn:
        callers = [r[0] for r in conn.execute("SELECT caller FROM spend_calls")]
    assert callers == [bare_name]
    for path in (p for p in tmp_path.glob("home/**/*") if p.is_file()):  # the spend journal too
        data = path.read_bytes()
        assert ALICE.encode() not in data and BARE.encode() not in data, path
    assert ALICE not in server.stderr() and BARE not in server.stderr()


def test_token_entries_may_carry_names(tmp_path: Path) -> None:
    import pytest

    from hive_mcp.tokens import bearer_tokens, caller_name

    file = tmp_path / "tokens"
    file.write_text("# team\nbob:tok-bob-1\n9plain:with-colon\n")
    assert bearer_tokens("carol:tok-carol-1", file) == ("tok-carol-1", "tok-bob-1", "9plain:with-colon")
    assert caller_name(b"tok-carol-1") == "carol" and caller_name(b"tok-bob-1") == "bob"
    assert caller_name(b"9plain:with-colon") == hashlib.sha256(b"9plain:with-colon").hexdigest()[:8]
    with pytest.raises(ValueError, match="'dave' is given to two tokens") as err:
        bearer_tokens("dave:tok-d-1,dave:tok-d-2", None)
    assert "tok-d" not in str(err.value)


def budget_gauges(server: HttpServer) -> dict[str, float]:
    """The overall daily budget's gauges (limit, spent, reserved) in one scrape of the server's /metrics."""
    scraped = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=30)
    assert scraped.status_code == 200, scraped.text
    found = {}
    for line in scraped.text.splitlines():
        for what in ("limit", "spent", "reserved"):
            sample = f'hive_mcp_budget_{what}_usd{{budget="all:day"}} '
            if line.startswith(sample):
                found[what] = float(line.removeprefix(sample))
    return found


def wait_for_gauges(server: HttpServer, shown: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """Scrapes until the budget gauges are `shown` (they are published off the event loop), within a bound."""
    deadline = time.monotonic() + GAUGES_S
    while not shown(gauges := budget_gauges(server)):
        assert time.monotonic() < deadline, gauges
        time.sleep(0.1)  # polling /metrics: there is no event to wait on
    return gauges


def test_budgets_are_on_the_metrics_from_start_up_and_a_refusal_brings_them_up_to_date(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A configured budget has its gauges before any call (spent 0), not only once a call settles; and a call the
    budget refuses updates them: here another instance on the same ledger holds the whole budget, and after the
    refusal the gauges show it reserved."""
    home = tmp_path / "home"
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    env.update(HIVE_HOME=str(home), HIVE_MCP_BUDGET_USD_DAY="1")
    server = HttpServer("http", env, tmp_path, "budget-gauges")
    session = None
    try:
        server.wait_ready()
        before = wait_for_gauges(server, lambda g: "limit" in g)
        ledger = SQLiteBackend(default_spend_path({"HIVE_HOME": str(home)}))
        now = datetime.now(timezone.utc)
        try:  # the other instance's call in flight, holding all of today's budget
            ledger.reserve(Reservation("elsewhere", "someone", MODEL, micro(1.0), now, now + timedelta(hours=1)),
                           [Budget("all", "", "day", micro(1.0))])  # fmt: skip
        finally:
            ledger.close()
        server.wait_loaded()  # the call is bounded as a call, not as litellm's import (the gauges are not)
        session = Session(server.client_target, "legacy")
        refused = session.run(lambda c: c.call_tool("complete", {"prompt": "hi"}))
        after = wait_for_gauges(server, lambda g: g.get("reserved") == 1.0)
    finally:
        if session is not None:
            session.close()
        assert server.terminate() == 0, server.stderr()
    assert before == {"limit": 1.0, "spent": 0.0, "reserved": 0.0}
    assert refused.is_error and "budget" in text_of(refused), text_of(refused)
    assert after == {"limit": 1.0, "spent": 0.0, "reserved": 1.0}
    assert not upstream.chat_requests()
