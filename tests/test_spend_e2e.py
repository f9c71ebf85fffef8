"""Spend through `python -m hive_mcp` over HTTP: callers named by their tokens, the token never stored."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from hive_mcp.mcp.results import call_facts
from hive_mcp.spend.budgets import micro
from harness.upstream import Reply, Upstream
from tests.clients import text_of
from tests.servers import HttpServer, Session, authed_target, server_env

ALICE = "tok-alice-0123456789abcdef"
BARE = "tok-bare-0123456789abcdef"
CAROL = "tok-carol-0123456789abcdef"


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
        server.wait_ready()
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
