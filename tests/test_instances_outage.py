"""Redis away under load, two hive-mcp instances on one real valkey-server: stopped, and frozen (SIGSTOP).

Budgeted calls answer before the outage; four streams reserve and are held on the model; Valkey goes away
(stopped, or frozen: it keeps its connections and answers nothing); the streams finish, so their calls
settle while it is away; more calls are made meanwhile; Valkey returns; calls go on until the budget
refuses one. Then:

* the ledger holds exactly one row per answered call (those settled during the outage come from each
  instance's journal, once), and what it charged is within the budget;
* each instance warned once that the state store went and once that it was back (and its journal once
  each way), never per call;
* both were using Redis again within 5 s of Valkey answering (`every store uses it again`);
* while Valkey was frozen, the calls made meanwhile were refused at once: the outage cost each instance at
  most one timeout (the state store's, 1 s), paid by the first call that met it, not by every call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from mcp import Client

from hive_mcp.spend.budgets import micro
from hive_mcp.state_store import TIMEOUT_S
from tests.servers import HttpServer, Session, instances_on
from tests.clients import text_of
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

BUDGET_USD = 0.002
MAX_TOKENS = 100
USAGE = {"prompt_tokens": 5, "completion_tokens": MAX_TOKENS, "total_tokens": 5 + MAX_TOKENS}
STREAMS_PER_INSTANCE = 2
BACK_S = 5.0
ARGS = {"prompt": "hi", "max_tokens": MAX_TOKENS}


def reply(request: RecordedRequest) -> Reply:
    if isinstance(request.body, dict) and request.body.get("stream"):
        return Reply.stream(["held ", "text"], hold_after=1, usage=USAGE)
    return Reply.text("ok", usage=USAGE)


@pytest.fixture
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess(valkey_binary()) as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream(reply_for=reply) as up:
        yield up


def wait_log(server: HttpServer, text: str, count: int, bound_s: float) -> None:
    """Until `text` is in the server's log `count` times (its log is the event; bounded)."""
    deadline = time.monotonic() + bound_s
    while server.stderr().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count} not in {server.stderr_path} within {bound_s}s"
        time.sleep(0.01)


def streams(session: Session, held: threading.Event, results: list[Any]) -> None:
    """Start this instance's streams; set `held` once each sent its first text (each reserved, on the model)."""

    async def go(c: Client) -> None:
        started = [anyio.Event() for _ in range(STREAMS_PER_INSTANCE)]

        async def one(i: int) -> None:
            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                if message:
                    started[i].set()

            results.append(await c.call_tool("stream_complete", ARGS, progress_callback=on_progress))

        async with anyio.create_task_group() as tg:
            for i in range(STREAMS_PER_INSTANCE):
                tg.start_soon(one, i)
            for event in started:
                await event.wait()
            held.set()

    session.run(go, timeout=120)


def timed_calls(session: Session, n: int) -> list[tuple[float, Any]]:
    async def go(c: Client) -> list[tuple[float, Any]]:
        out = []
        for _ in range(n):
            began = time.monotonic()
            result = await c.call_tool("complete", ARGS)
            out.append((time.monotonic() - began, result))
        return out

    return session.run(go, timeout=120)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_redis_away_under_load_loses_no_row_passes_no_budget_and_is_told_once(
    how: str, valkey: ValkeyProcess, upstream: Upstream, tmp_path: Path
) -> None:
    with instances_on(
        valkey.url, tmp_path, ("one", "two"), HIVE_MCP_API_BASE=upstream.base_url, HIVE_MCP_MODEL="openai/gpt-4o-mini",
        HIVE_MCP_API_KEY="sk-outage-0123456789SECRET", HIVE_MCP_BUDGET_USD_DAY=str(BUDGET_USD),
    ) as servers:  # fmt: skip
        sessions = [Session(lambda url=s.url: url, "auto") for s in servers]
        try:
            before = [r for s in sessions for _, r in timed_calls(s, 2)]
            assert not any(r.is_error for r in before), [text_of(r) for r in before]
            held = [threading.Event() for _ in sessions]
            streamed: list[Any] = []
            threads = [threading.Thread(target=streams, args=(s, h, streamed)) for s, h in zip(sessions, held)]
            for t in threads:
                t.start()
            for h in held:
                assert h.wait(60)
            valkey.freeze() if how == "frozen" else valkey.stop()
            upstream.release()  # the streams end: their calls settle while Redis is away
            for t in threads:
                t.join(60)
            meanwhile = [timed_calls(s, 5) for s in sessions]
            back_at = time.monotonic()
            valkey.thaw() if how == "frozen" else valkey.start()
            for server in servers:
                wait_log(server, "every store uses it again", 1, BACK_S)
            assert time.monotonic() - back_at <= BACK_S
            after: list[Any] = []
            for i in range(60):  # until the budget refuses
                [(_, result)] = timed_calls(sessions[i % 2], 1)
                after.append(result)
                if result.is_error:
                    break
        finally:
            for s in sessions:
                s.close()
        logs = [s.stderr() for s in servers]

    assert len(streamed) == 2 * STREAMS_PER_INSTANCE and not any(r.is_error for r in streamed)
    refused = [r for calls in meanwhile for _, r in calls]
    assert all(r.is_error and "did not answer" in text_of(r) for r in refused), [text_of(r) for r in refused]
    assert after[-1].is_error and "budget" in text_of(after[-1]), text_of(after[-1])
    answered_after = [r for r in after if not r.is_error]
    assert answered_after, "no call was answered after Redis returned"

    store = redis.Redis.from_url(valkey.url)
    rows = store.zcard("hive-mcp:spend:calls")
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    spent = int(store.get(f"hive-mcp:spend:spent:d:{day}:all") or 0)
    kept_before = len(before) if how == "frozen" else 0  # a stopped Valkey (no persistence) forgot them
    assert rows == kept_before + len(streamed) + len(answered_after)  # every answered call once
    assert spent <= micro(BUDGET_USD)

    for log in logs:
        assert log.count("is unavailable (") == 1, log  # one warning per outage per process
        assert log.count("every store uses it again") == 1, log
        assert log.count("did not take a settled call") == 1 and log.count("journal is drained") == 1, log
        assert "Traceback" not in log and "SECRET" not in log
    if how == "frozen":
        for calls in meanwhile:  # the breaker was open: nobody waited on the frozen Redis again
            assert sum(d for d, _ in calls) <= TIMEOUT_S, [round(d, 3) for d, _ in calls]


def failing(request: RecordedRequest) -> Reply:
    """A 401 for a prompt saying "fail" (the call fails at once, and writes a failure dump); text for the rest."""
    if "fail" in json.dumps(request.body):
        return Reply.error(401, "bad key")
    return Reply.text("ok", usage=USAGE)


def calls(session: Session, prompts: list[str]) -> list[Any]:
    async def go(c: Client) -> list[Any]:
        return [await c.call_tool("complete", {"prompt": p, "max_retries": 0}) for p in prompts]

    return session.run(go, timeout=120)


def test_redis_stopped_mid_run_the_dumps_and_the_ledger_degrade_with_one_warning_and_the_server_answers(
    valkey: ValkeyProcess, tmp_path: Path
) -> None:
    """Valkey stops under a running instance: its calls go on being answered; the failure dumps written meanwhile
    go to the local directory and the settled calls to the spend journal, told once for the whole outage (the
    state store's warning, and the journal's), never per call; once Valkey is back both move into it."""
    with Upstream(reply_for=failing) as upstream, instances_on(
        valkey.url, tmp_path, ("one",), HIVE_MCP_API_BASE=upstream.base_url, HIVE_MCP_MODEL="openai/gpt-4o-mini",
        HIVE_MCP_API_KEY="sk-outage-0123456789SECRET",
    ) as [server]:  # fmt: skip
        session = Session(lambda: server.url, "auto")
        try:
            assert [r.is_error for r in calls(session, ["hi", "fail"])] == [False, True]
            valkey.stop()
            meanwhile = calls(session, ["hi", "fail"] * 4)
            local = sorted((tmp_path / "one-dumps").glob("*.json"))
            valkey.start()
            wait_log(server, "every store uses it again", 1, BACK_S)
            after = calls(session, ["fail", "hi"])
        finally:
            session.close()
        log = server.stderr()

    assert [r.is_error for r in meanwhile] == [False, True] * 4, [text_of(r) for r in meanwhile]
    assert all("bad key" in text_of(r) for r in meanwhile[1::2])
    assert [r.is_error for r in after] == [True, False]
    assert len(local) == 4  # each dump of the outage kept locally ...
    assert not list((tmp_path / "one-dumps").glob("*.json"))  # ... and moved into Redis once it was back
    store = redis.Redis.from_url(valkey.url)  # restarted without persistence: only what came after it
    assert store.zcard("hive-mcp:dumps") == 4 + 1
    assert store.zcard("hive-mcp:spend:calls") == 4 + 1  # the journal's rows, once each, and the last call
    assert log.count("is unavailable (") == 1 and log.count("every store uses it again") == 1, log
    assert log.count("did not take a settled call") == 1 and log.count("journal is drained") == 1, log
    assert "could not write failure dump" not in log and "Traceback" not in log and "SECRET" not in log, log
