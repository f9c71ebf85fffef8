"""`--workers N` stopped with calls in flight: each worker writes what it owes the spend ledger before it exits.

A real `--workers 2` server (`tests.worker_pid`, so each call reaches the worker the test means) on the scripted
upstream, under a daily budget (so each call holds a reservation), its ledger SQLite or a valkey-server of its
own. SIGTERM arrives while each worker has two calls upstream: one answered during the drain, one the grace
period cuts. Once the server has exited, a fresh store on the same ledger holds every call's row and no
reservation, no journal file is left (no row waits for a later process), and each worker ran its exit hooks
(the files of its live gauges are gone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import product
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from hive_mcp.spend import Budgets, SQLiteBackend
from hive_mcp.spend.journal import JOURNAL_DIRNAME
from hive_mcp.spend.ledger import Backend
from hive_mcp.spend.redis_backend import RedisBackend
from hive_mcp.spend.sqlite_backend import default_spend_path
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.clients import text_of
from tests.conftest_valkey import valkey_binary
from tests.servers import CALL_S, HttpServer, exited_cleanly
from tests.steering import Seen, Steer, worker_pids
from tests.worker_servers import run_until_exit, two_worker_server, wait_loaded, workers_env

GRACE_S = 2
BUDGETS = Budgets.from_settings(day=100.0, month=None, section=None)


def _reply(request: RecordedRequest) -> Reply:
    """`cut` is never answered; `drain` waits for `Upstream.release()`; anything else is answered at once."""
    prompt = json.dumps(request.messages)
    if "cut" in prompt:
        return Reply.hang()
    streamed = isinstance(request.body, dict) and request.body.get("stream")
    reply = Reply.stream(["answered"]) if streamed else Reply.text("answered")
    return reply.held() if "drain" in prompt else reply


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Callable[[], Backend]]]:
    """(the server's settings naming the ledger, a fresh store on it)."""
    if request.param == "sqlite":
        home = tmp_path / "hive-home"  # `server_env`'s hive home
        yield {}, lambda: SQLiteBackend(default_spend_path({"HIVE_HOME": str(home)}))
        return
    with ValkeyProcess(valkey_binary()) as valkey:
        yield {"HIVE_MCP_STATE_URL": valkey.url}, lambda: RedisBackend(valkey.url)


async def _reached_upstream(upstream: Upstream, n: int) -> None:
    """Until the upstream has had `n` chat requests (bounded)."""
    with anyio.fail_after(CALL_S):
        while len(upstream.chat_requests()) < n:
            await anyio.sleep(0.02)  # the upstream's request list: there is no event per count


def _logged(server: HttpServer, text: str, times: int) -> None:
    """Until the server's log says `text` `times` times (bounded)."""
    deadline = time.monotonic() + CALL_S
    while server.stderr().count(text) < times:
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)  # polling a log file: there is no event to wait on


def test_calls_answered_or_cut_while_workers_stop_are_in_the_ledger_and_hold_nothing(
    ledger: tuple[dict[str, str], Callable[[], Backend]], tmp_path: Path
) -> None:
    settings, open_ledger = ledger
    home = tmp_path / "hive-home"
    with Upstream(reply_for=_reply) as upstream:
        env = workers_env(upstream, tmp_path / "dumps") | settings | {
            "HIVE_MCP_BUDGET_USD_DAY": "100", "HIVE_MCP_SHUTDOWN_GRACE_S": str(GRACE_S),
        }  # fmt: skip
        server = two_worker_server(env, tmp_path, "stop")
        try:
            server.wait_ready()
            wait_loaded(server)
            pids = worker_pids(server.stderr())
            steer = Steer(Seen())

            async def go(c: Client) -> dict[str, Any]:
                outcomes: dict[str, Any] = {}

                async def one(name: str, prompt: str) -> None:
                    try:
                        outcomes[name] = await c.call_tool("complete", {"prompt": prompt})
                    except MCPError as exc:
                        outcomes[name] = exc

                for pid in pids:  # a call answered on each worker before the stop
                    steer.want = pid
                    await one(f"before {pid}", "before")
                async with anyio.create_task_group() as tg:
                    for i, (pid, prompt) in enumerate(product(pids, ("drain", "cut"))):
                        steer.want = pid
                        tg.start_soon(one, f"{prompt} {pid}", prompt)
                        await _reached_upstream(upstream, len(pids) + i + 1)  # sent by its worker
                    server.signal_stop()
                    await anyio.to_thread.run_sync(_logged, server, "shutting down:", 2)  # each worker drains
                    upstream.release()  # the `drain` calls are answered within the grace period
                return outcomes

            outcomes, rc = run_until_exit(server, steer, go)
        finally:
            server.terminate()
    exited_cleanly(server, rc)
    assert sorted(outcomes) == sorted(f"{p} {pid}" for p in ("before", "drain", "cut") for pid in pids)
    for name, outcome in outcomes.items():
        if name.startswith("cut"):
            assert isinstance(outcome, MCPError) and "shut down" in str(outcome), outcome
        else:
            assert not isinstance(outcome, MCPError) and text_of(outcome) == "answered", outcome

    backend = open_ledger()
    try:
        rows = backend.calls(datetime.now(timezone.utc) - timedelta(hours=1))
        held = backend.state(list(BUDGETS.items), datetime.now(timezone.utc))
    finally:
        backend.close()
    # Answered: the provider's usage; cut: its prompt, estimated. Each worker's four calls, each once.
    assert sorted(r.estimated for r in rows) == [False] * 4 + [True] * 2, rows
    assert [reserved for _, reserved in held.values()] == [0], held
    assert sorted(p.name for p in (home / JOURNAL_DIRNAME).glob("*")) == []
    assert sorted(p.name for p in (home / "metrics").glob("gauge_live*")) == []
