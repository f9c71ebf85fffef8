"""Budget scopes are declared once (`hive_mcp.spend.budgets.SCOPES`): a kind declared there alone is read from
the settings, applies to the calls whose key names it, and is held, checked and charged by both ledgers (SQLite
on a real file, Redis on a real valkey-server) and by `Spend`, with no change to either. A SQLite ledger written
before its totals were kept by scope reads the same spent amounts once opened, and the same usage."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hive_mcp.calls.call import Call
from hive_mcp.dumps import DumpStore
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.spend import Budget, BudgetError, BudgetRefusal, Budgets, CallRecord, Refused, Reservation
from hive_mcp.spend import SQLiteBackend, Spend
from hive_mcp.spend import budgets as declared
from hive_mcp.spend.budgets import CALLER, GROUP, ScopeKind
from hive_mcp.spend.ledger import Backend
from hive_mcp.spend.usage import usage_report
from tests.clients import MODEL, connect, mcp_server, text_of
from harness.upstream import Reply, Upstream

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
TOOL = ScopeKind(kind="tool", section="tools", key="tool", noun="tool", label="tool {name}'s", private=False)
AGENT = ScopeKind(kind="agent", section="agents", key=CALLER, noun="agent", label="agent {name}'s", private=True)
"""A second kind of budget a caller has of its own: its budgets name callers."""


@pytest.fixture
def tool_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind of scope the product does not have, declared where every kind is: nothing else knows it."""
    monkeypatch.setattr(declared, "SCOPES", (*declared.SCOPES, TOOL))


def tool_budgets(**tools: float) -> Budgets:
    section = {"tools": {name: {"day": usd} for name, usd in tools.items()}}
    return Budgets.from_settings(day=None, month=None, section=section, names={"tool": ["complete", "stream_complete"]})


def reservation(amount: int, tool: str, caller: str = "alice") -> Reservation:
    return Reservation(uuid.uuid4().hex, caller, "g", amount, NOW, NOW + timedelta(minutes=1), keys=(("tool", tool),))


def record(r: Reservation, cost: int) -> CallRecord:
    return CallRecord(r.start, r.caller, r.group, "openai/gpt-4o-mini", 10, 5, 0, 0, cost, None, False)


def test_a_scope_declared_in_budgets_alone_is_read_from_the_settings(tool_scope: None) -> None:
    [b] = tool_budgets(complete=0.001).items
    assert (b.id, b.label()) == ("tool:complete:day", "tool complete's daily budget of $0.001000")
    keys = {"caller": "alice", "group": "g"}
    assert tool_budgets(complete=1).applying({**keys, "tool": "complete"}) == [Budget("tool", "complete", "day", 10**6)]
    assert tool_budgets(complete=1).applying({**keys, "tool": "stream_complete"}) == []
    assert tool_budgets(complete=1).applying(keys) == []  # a call without the key is not in the scope
    with pytest.raises(BudgetError, match=r"^budgets\.tools\.compete: not a known tool; known: complete, "):
        tool_budgets(compete=1)


def test_a_declared_scope_is_held_checked_and_charged_by_both_ledgers(tool_scope: None, ledger: Backend) -> None:
    [b] = tool_budgets(complete=0.001).items  # 1000 micro-USD a day for the tool `complete`
    overall = Budget("all", "", "day", 10_000)
    first = reservation(600, "complete")
    assert ledger.reserve(first, [b, overall]) == {b.id: 400, overall.id: 9400}
    with pytest.raises(Refused) as refused:
        ledger.reserve(reservation(600, "complete", caller="bob"), [b, overall])
    assert (refused.value.budget, refused.value.left, refused.value.amount) == (b, 400, 600)
    other = reservation(900, "stream_complete")  # another tool: not in the scope
    ledger.reserve(other, [overall])
    assert ledger.state([b, overall], NOW) == {b.id: (0, 600), overall.id: (0, 1500)}
    ledger.settle(first, record(first, 250))
    ledger.settle(other, record(other, 700))
    assert ledger.state([b, overall], NOW) == {b.id: (250, 0), overall.id: (950, 0)}
    ledger.reserve(reservation(750, "complete"), [b])  # what is left once the call cost less than it held


async def test_spend_holds_a_call_against_the_scopes_its_keys_name(
    tool_scope: None, provider: LiteLLMProvider, tmp_path: Path
) -> None:
    budgets = tool_budgets(complete=0.000001)  # one micro-USD: no call fits
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    try:
        ask = {"system": "", "max_tokens": 100, "deadline": 30}
        prompt = [{"role": "user", "content": "hi"}]
        with pytest.raises(BudgetRefusal, match=r"^budget: the tool complete's daily budget of \$0\.000001 has "):
            await spend.reserve("local", MODEL, prompt, keys={"tool": "complete"}, **ask)
        ticket = await spend.reserve("local", MODEL, prompt, keys={"tool": "stream_complete"}, **ask)
        assert not ticket.left  # no budget applies to it: nothing held
        await spend.release(ticket)
    finally:
        spend.release_all()


async def test_the_keys_a_call_gives_reach_its_reservation_through_metering(
    tool_scope: None, monkeypatch: pytest.MonkeyPatch, provider: LiteLLMProvider, store: DumpStore,
    upstream: Upstream, tmp_path: Path,
) -> None:  # fmt: skip
    """A tool's budget, its key read off the call: `stream_complete` has none left, `complete` goes through."""
    monkeypatch.setattr(Call, "scope_keys", property(lambda c: {"tool": "stream_complete" if c.stream else "complete"}))
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), tool_budgets(stream_complete=0, complete=1), provider)
    upstream.script(Reply.text("hi", usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    try:
        async with connect(mcp_server(provider, store, spend=spend), "legacy") as c:
            refused = await c.call_tool("stream_complete", {"prompt": "hello", "max_tokens": 10})
            assert refused.is_error and "the tool stream_complete's daily budget of $0.00 has" in text_of(refused)
            ok = await c.call_tool("complete", {"prompt": "hello", "max_tokens": 10})
            assert not ok.is_error, text_of(ok)
        assert len(upstream.chat_requests()) == 1
        [b] = [b for b in spend.budgets.items if b.name == "complete"]
        assert spend.settled().state([b], spend.clock())[b.id][0] > 0  # charged to the tool's scope
    finally:
        spend.release_all()


def test_a_private_kinds_budgets_of_another_caller_stay_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A caller sees the budgets that can refuse its calls: the overall ones, every model group's, each shared
    kind's (the tool's), and of a private kind (`ScopeKind.private`: the caller's, and a kind declared like it)
    its own alone; everyone's for an admin (None)."""
    monkeypatch.setattr(declared, "SCOPES", (*declared.SCOPES, TOOL, AGENT))
    section = {"day": 1, "callers": {"alice": {"day": 1}, "bob": {"day": 1}}, "models": {"smart": {"day": 1}},
               "tools": {"complete": {"day": 1}}, "agents": {"alice": {"month": 1}, "bob": {"month": 1}}}  # fmt: skip
    budgets = Budgets.from_settings(day=None, month=None, section=section)
    ledger = SQLiteBackend(tmp_path / "spend.sqlite3")
    try:
        seen = {who: {b.budget for b in usage_report(ledger, budgets, NOW, who).budgets} for who in ("alice", None)}
    finally:
        ledger.close()
    shared = {"all:day", "model:smart:day", "tool:complete:day"}
    assert seen["alice"] == shared | {"caller:alice:day", "agent:alice:month"}
    assert seen[None] == shared | {"caller:alice:day", "caller:bob:day", "agent:alice:month", "agent:bob:month"}
    assert [k.kind for k in declared.SCOPES if k.private] == ["caller", "agent"]


def test_every_declared_scope_reads_a_key_a_call_gives() -> None:
    """A kind's key is the caller, the model group, or one of `Call.scope_keys`: metering hands those on."""
    given = {CALLER, GROUP, *Call(caller="local", messages=()).scope_keys}
    assert {k.key for k in declared.SCOPES} <= given


OLD_TOTALS = [  # day, caller, group, cost, calls, unpriced, input, output
    ("2026-11-30", "alice", "smart", 100, 1, 0, 10, 5),  # last month
    ("2026-12-01", "alice", "smart", 200, 2, 0, 20, 10),
    ("2026-12-01", "alice", "cheap", 30, 1, 1, 3, 1),
    ("2026-12-01", "bob", "smart", 4000, 3, 0, 40, 20),
    ("2026-12-01", "local", "cheap", 5, 1, 0, 1, 1),
]


def test_a_ledger_written_before_totals_by_scope_reads_the_same_spent_and_usage(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite3"
    # The old schema: today's without spend_scoped (and its index), the one table this change adds.
    fresh = SQLiteBackend(path)
    fresh.state([], NOW)
    fresh.close()
    with sqlite3.connect(path) as old:
        old.execute("DROP TABLE spend_scoped")
        old.executemany("INSERT INTO spend_totals VALUES (?, ?, ?, ?, ?, ?, ?, ?)", OLD_TOTALS)
        old.execute("INSERT INTO spend_holds VALUES ('live', 'all', '2026-12-01', 70, ?)", (NOW.timestamp() + 60,))
    old.close()
    budgets = [Budget("all", "", "day", 10**6), Budget("all", "", "month", 10**6),
               Budget("caller", "alice", "day", 10**6), Budget("caller", "bob", "month", 10**6),
               Budget("model", "smart", "day", 10**6), Budget("model", "cheap", "month", 10**6),
               Budget("caller", "nobody", "day", 10**6)]  # fmt: skip
    b = SQLiteBackend(path)
    try:
        assert b.state(budgets, NOW) == {
            "all:day": (4235, 70), "all:month": (4235, 70), "caller:alice:day": (230, 0), "caller:bob:month": (4000, 0),
            "model:smart:day": (4200, 0), "model:cheap:month": (35, 0), "caller:nobody:day": (0, 0),
        }
        assert [tuple(vars(row).values()) for row in b.totals("2026-11-01")] == sorted(OLD_TOTALS)
        report = usage_report(b, Budgets(tuple(budgets)), NOW)
        assert (report.today.by_caller, report.today.by_model) == (
            {"alice": 0.00023, "bob": 0.004, "local": 0.000005}, {"cheap": 0.000035, "smart": 0.0042},
        )
        r = Reservation("new", "alice", "smart", 50, NOW, NOW + timedelta(minutes=1))
        b.settle(r, CallRecord(NOW, "alice", "smart", "d", 1, 1, 0, 0, 9, None, False))
        assert b.state(budgets[:3], NOW) == {"all:day": (4244, 70), "all:month": (4244, 70),
                                             "caller:alice:day": (239, 0)}  # fmt: skip
    finally:
        b.close()
    reopened = SQLiteBackend(path)  # opened again: the old rows are not counted twice
    try:
        assert reopened.state(budgets[:1], NOW) == {"all:day": (4244, 70)}
    finally:
        reopened.close()
