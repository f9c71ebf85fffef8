"""`hive-mcp usage`: the ledger as a table and as JSON, through the real command (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hive_mcp.spend import CallRecord, Reservation, SQLiteBackend
from hive_mcp.spend.budgets import reset_at
from harness.processes import child_env

NOW = datetime.now(timezone.utc)


def settle(b: SQLiteBackend, caller: str, group: str, cost: int, when: datetime) -> None:
    r = Reservation(f"{caller}{group}{when.timestamp()}", caller, group, 0, when, when + timedelta(minutes=5))
    b.settle(r, CallRecord(when, caller, group, group, 100, 10, 0, 0, cost, None, False))


def usage(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", "usage", *args], env=child_env(HIVE_HOME=str(home), **env), cwd=home,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_usage_prints_a_table_and_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    b = SQLiteBackend(home / "hive-mcp-spend.sqlite3")
    settle(b, "alice", "smart", 1_500_000, NOW)
    settle(b, "bob", "smart", 250_000, NOW)
    settle(b, "bob", "cheap", 10_000, NOW)
    settle(b, "bob", "cheap", 70_000, NOW - timedelta(days=10))  # outside --since 7d
    b.close()
    table = usage(home, "--since", "7d", "--by", "caller", HIVE_MCP_BUDGET_USD_DAY="5")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CALLER", "COST", "USD", "CALLS"]
    assert lines[1].split() == ["alice", "1.500000", "1"] and lines[2].split() == ["bob", "0.260000", "2"]
    assert lines[3].split() == ["TOTAL", "1.760000", "3"]
    # The day's budget counts the calls of the day it reports (the one its reset ends): today's, unless the UTC
    # day turned between the calls above and the command.
    budget = lines[6].split()
    counted = " ".join(budget[5:7]) == reset_at("day", NOW).strftime("%Y-%m-%d %H:%M")
    spent_left = ["1.760000", "0.000000", "3.240000"] if counted else ["0.000000", "0.000000", "5.000000"]
    assert budget[:5] == ["all:day", "5.00", *spent_left]
    doc = json.loads(usage(home, "--by", "model", "--json").stdout)
    assert doc["rows"] == [{"model": "cheap", "cost_usd": 0.08, "calls": 2, "unpriced_calls": 0},
                           {"model": "smart", "cost_usd": 1.75, "calls": 2, "unpriced_calls": 0}]
    assert doc["total_usd"] == 1.83 and doc["budgets"] == []
    by_day = json.loads(usage(home, "--since", "30d", "--by", "day", "--json").stdout)["rows"]
    assert [r["day"] for r in by_day] == sorted({(NOW - timedelta(days=10)).strftime("%Y-%m-%d"), NOW.strftime("%Y-%m-%d")})


def test_usage_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    bad = usage(tmp_path, "--since", "last tuesday")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--since" in bad.stderr


def test_usage_flags_unpriced_calls(tmp_path: Path) -> None:
    home = tmp_path / "home"
    b = SQLiteBackend(home / "hive-mcp-spend.sqlite3")
    settle(b, "alice", "smart", 1_500_000, NOW)
    for when in (NOW, NOW - timedelta(seconds=1)):  # two calls to a model without a price: recorded at no cost
        r = Reservation(f"house{when.timestamp()}", "alice", "house", 0, when, when + timedelta(minutes=5))
        b.settle(r, CallRecord(when, "alice", "house", "openai/house-1", 100, 10, 0, 0, 0, None, True))
    b.close()
    lines = usage(home, "--since", "7d", "--by", "model").stdout.splitlines()
    assert lines[1].split() == ["house", "unpriced", "2"]
    assert lines[2].split() == ["smart", "1.500000", "1"]
    assert lines[3].split() == ["TOTAL", "1.500000", "(2", "unpriced)", "3"]
    doc = json.loads(usage(home, "--by", "model", "--json").stdout)
    assert doc["rows"] == [
        {"model": "house", "cost_usd": None, "calls": 2, "unpriced_calls": 2},
        {"model": "smart", "cost_usd": 1.5, "calls": 1, "unpriced_calls": 0},
    ]
    assert doc["unpriced_calls"] == 2
