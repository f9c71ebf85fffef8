"""The spend journal: no settled call is lost when the ledger's backend is away or the process dies.

Against a real SQLite file and a real valkey-server: a process killed (SIGKILL, at a point its own backend
chooses, not by timing) right before and right after the backend took a settled call leaves the call in
the ledger exactly once after the next process starts, and its unsettled call's hold ends with its lease,
never before; a valkey-server stopped while calls settle keeps them in the journal, one warning when it
starts and one when it drains, and each is written once when Valkey answers again.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.base import LLMResponse
from hive_mcp.spend import BudgetRefusal, Budgets, CallRecord, Reservation, SQLiteBackend, Spend
from hive_mcp.spend.journal import JOURNAL_DIRNAME, ORPHANS_EVERY_S, Journal
from hive_mcp.spend.ledger import Backend
from hive_mcp.spend.redis_backend import RedisBackend
from hive_mcp.spend.service import LEASE_MARGIN_S
from harness.processes import ROOT, child_env
from tests.conftest import MODEL
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

BUDGETS = Budgets.from_settings(day=1.0, month=None, section=None)
PROMPT = [{"role": "user", "content": "hello"}]


def answer(cost: float = 0.001) -> LLMResponse:
    return LLMResponse(content="hi", model=MODEL, input_tokens=10, output_tokens=5, cost_usd=cost)


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str, Backend]]:
    """(kind, where, prefix, a backend on it) for the crashed process and the next one to share."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    if request.param == "sqlite":
        where = str(tmp_path / "spend.sqlite3")
        backend: Backend = SQLiteBackend(where)
    else:
        where = request.getfixturevalue("valkey_server").url
        backend = RedisBackend(where, prefix=prefix)
    yield request.param, where, prefix, backend
    backend.close()


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_process_killed_between_settling_and_releasing_loses_no_row_and_counts_none_twice(
    ledger: tuple[str, str, str, Backend], point: str, tmp_path: Path
) -> None:
    kind, where, prefix, backend = ledger
    home = Path(os.environ["HIVE_HOME"])
    child = subprocess.run(
        [sys.executable, "-m", "tests.spend_crash", kind, where, prefix, point], cwd=ROOT, capture_output=True,
        text=True, timeout=120, env=child_env(HIVE_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True"),
    )  # fmt: skip
    assert child.returncode == -9, child.stderr[-2000:]
    assert "reserved" in child.stdout and "not killed" not in child.stdout
    expires = datetime.fromisoformat(child.stdout.split()[1])
    [journal] = (home / JOURNAL_DIRNAME).glob("*.jsonl")
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700

    # The next process: its journal adopts the dead one's file and replays it before anything is reserved.
    spend = Spend(backend, BUDGETS, provider=None)  # type: ignore[arg-type] - no price is asked here
    assert spend.journal is not None and spend.journal.replay()
    assert not journal.exists()
    calls = backend.calls(since())
    assert [c.cost for c in calls] == [1000]
    assert spend.journal.replay() and len(backend.calls(since())) == 1  # replayed again: still once

    # The call in flight when the process died holds its worst case until its lease ends, and not after.
    [(spent, held)] = backend.state(list(BUDGETS.items), expires - timedelta(seconds=LEASE_MARGIN_S)).values()
    assert spent == 1000 and held > 0
    [(_, held_after)] = backend.state(list(BUDGETS.items), expires + timedelta(seconds=1)).values()
    assert held_after == 0


async def test_calls_settled_while_valkey_is_stopped_are_written_once_when_it_is_back(
    provider: LiteLLMProvider, caplog: pytest.LogCaptureFixture
) -> None:
    with ValkeyProcess(valkey_binary()) as valkey:
        backend = RedisBackend(valkey.url)
        spend = Spend(backend, BUDGETS, provider)
        tickets = [await spend.reserve("local", MODEL, PROMPT, system="", max_tokens=10, deadline=30) for _ in range(3)]
        valkey.stop()
        caplog.set_level(logging.WARNING, logger="hive_mcp.spend")
        for ticket in tickets:
            await spend.settle(ticket, answer())
        await anyio.to_thread.run_sync(spend.settled)  # the backend is asked after the answer
        assert spend.journal is not None and spend.journal.pending == 3
        gone = [r for r in caplog.records if "did not take a settled call" in r.getMessage()]
        assert len(gone) == 1, caplog.text  # one warning for the outage, not one per call
        drained = threading.Event()
        backend.shared.add_listener(lambda: drained.set() if spend.journal.pending == 0 else None)
        valkey.start()  # the state store's probe hears it; the journal drains then, before any call
        assert await anyio.to_thread.run_sync(drained.wait, 10)
        await spend.reserve("local", MODEL, PROMPT, system="", max_tokens=10, deadline=30)
        assert spend.journal.pending == 0
        assert [c.cost for c in backend.calls(since())] == [1000, 1000, 1000]
        drained = [r for r in caplog.records if "journal is drained" in r.getMessage()]
        assert len(drained) == 1, caplog.text
        assert "sk-" not in caplog.text


async def test_a_hold_the_ledger_took_after_the_call_gave_up_on_it_is_released_before_the_next_call(
    provider: LiteLLMProvider,
) -> None:
    """Valkey frozen while a call reserves: the call is refused after one timeout (nothing sent), but the script
    it sent runs when Valkey wakes, holding the call's worst case to its lease's end. The next reservation releases
    that hold first, so a budget with room for one call lets the next one through."""
    with ValkeyProcess(valkey_binary()) as valkey:
        backend = RedisBackend(valkey.url, prefix="frozen:")
        ask = dict(system="", max_tokens=1000, deadline=30)
        probe = Spend(backend, BUDGETS, provider)  # what one call's worst case is, at these prices
        worst = (await probe.reserve("local", MODEL, PROMPT, **ask)).reservation.amount
        probe.release_all()
        budgets = Budgets.from_settings(day=1.5 * worst / 1e6, month=None, section=None)
        spend = Spend(backend, budgets, provider)
        [budget] = budgets.items
        valkey.freeze()
        try:
            with pytest.raises(BudgetRefusal, match="did not answer"):
                await spend.reserve("local", MODEL, PROMPT, **ask)
        finally:
            valkey.thaw()
        assert await anyio.to_thread.run_sync(backend.shared.wait_usable, 10)
        [(spent, held)] = backend.state([budget], datetime.now(timezone.utc)).values()
        assert (spent, held) == (0, worst)  # the refused call's script ran once Valkey woke: its hold is there
        ticket = await spend.reserve("local", MODEL, PROMPT, **ask)
        [(spent, held)] = backend.state([budget], datetime.now(timezone.utc)).values()
        assert held == ticket.reservation.amount == worst  # the stray hold went before this one was made
        spend.release_all()


def test_a_live_process_takes_over_the_rows_a_peer_left_when_it_stopped_during_an_outage(tmp_path: Path) -> None:
    """Two processes sharing a hive home (two Journals on one directory, each holding its own file's lock): one
    settles while Valkey is stopped and then stops, its rows left in its file. The other, which checked for
    left files when it started, takes them over at its next check once `ORPHANS_EVERY_S` passed, not only when
    a new process starts, and writes them once Valkey is back."""
    clock = [1000.0]
    now = datetime.now(timezone.utc)
    with ValkeyProcess(valkey_binary()) as valkey:
        live = Journal(tmp_path / "journal", RedisBackend(valkey.url, prefix="peers:"), clock=lambda: clock[0])
        assert live.replay()  # the check at start: nothing left by anyone yet
        valkey.stop()
        leaving = Journal(tmp_path / "journal", RedisBackend(valkey.url, prefix="peers:"))
        for i in range(2):
            r = Reservation(f"left-{i}", "local", MODEL, 10, now, now + timedelta(seconds=60))
            assert not leaving.settle(r, CallRecord(now, "local", MODEL, MODEL, 10, 5, 0, 0, 7, None, False))
        leaving.close()  # stopped: its file stays, with the rows the ledger did not take
        valkey.start()
        backend = RedisBackend(valkey.url, prefix="peers:")
        assert backend.shared.wait_usable(10)
        assert live.replay() and backend.calls(since()) == []  # within the interval: not looked for yet
        clock[0] += ORPHANS_EVERY_S
        assert live.replay()
        assert [c.cost for c in backend.calls(since())] == [7, 7]  # each left row once
        assert [p.name for p in (tmp_path / "journal").glob("*.jsonl")] == [live._path.name]  # noqa: SLF001
        live.close()


def test_a_journal_under_steady_load_stays_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call still being settled when thousands of others go through (so the journal is never empty when
    one is done): the file is replaced by one holding what waits whenever it passes ROTATE_BYTES, each call
    reaches the ledger once, and once the slow call is in, the journal is empty."""
    from hive_mcp.spend import journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 16_384)
    slow_id, go_on, slow_started = "slow", threading.Event(), threading.Event()

    class Slow(SQLiteBackend):  # the real SQLite ledger; one settle takes as long as the test says
        def settle(self, r: Reservation, record: CallRecord) -> None:
            if r.id == slow_id:
                slow_started.set()
                assert go_on.wait(30)
            super().settle(r, record)

    backend = Slow(tmp_path / "spend.sqlite3")
    journal = Journal(tmp_path / "journal", backend)
    now = datetime.now(timezone.utc)

    def call(call_id: str) -> tuple[Reservation, CallRecord]:
        r = Reservation(call_id, "local", MODEL, 10, now, now + timedelta(seconds=60))
        return r, CallRecord(now, "local", MODEL, MODEL, 10, 5, 0, 0, 7, None, False)

    slow = threading.Thread(target=journal.settle, args=call(slow_id))
    slow.start()
    assert slow_started.wait(10)
    sizes = []
    for i in range(400):
        assert journal.settle(*call(f"call-{i}"))
        [path] = (tmp_path / "journal").glob("*.jsonl")
        sizes.append(path.stat().st_size)
    assert max(sizes) <= 16_384 + 1_024 and journal.pending == 1  # the slow call, still in the file
    assert slow_id.encode() in path.read_bytes()
    go_on.set()
    slow.join(10)
    assert journal.pending == 0 and len(backend.calls(since())) == 401
    backend.close()


def test_a_journal_line_from_before_reservations_kept_keys_is_replayed(tmp_path: Path) -> None:
    """A process that stopped with a call waiting, its line written before a reservation kept the call's
    further keys: the next process takes the file over and the call counts in its scopes once."""
    import json
    from dataclasses import asdict

    from hive_mcp.spend import Budget

    now = datetime.now(timezone.utc)
    record = CallRecord(now, "alice", MODEL, MODEL, 10, 5, 0, 0, 7, None, False)
    old = {"id": "old", "caller": "alice", "group": MODEL, "amount": 10, "start": now.isoformat(),
           "expires": (now + timedelta(seconds=60)).isoformat(), "groups": []}  # fmt: skip
    line = {"r": old, "c": {**asdict(record), "time": now.isoformat()}}
    (tmp_path / "journal").mkdir(mode=0o700)
    (tmp_path / "journal" / "1-0000.jsonl").write_text(json.dumps(line) + "\n")
    backend = SQLiteBackend(tmp_path / "spend.sqlite3")
    journal = Journal(tmp_path / "journal", backend)
    try:
        assert journal.replay()
        scopes = (("all", ""), ("caller", "alice"), ("model", MODEL))
        budgets = [Budget(scope, name, "day", 100) for scope, name in scopes]
        assert {spent for spent, _ in backend.state(budgets, now).values()} == {7}
        assert [c.cost for c in backend.calls(since())] == [7]
    finally:
        journal.close()
        backend.close()
