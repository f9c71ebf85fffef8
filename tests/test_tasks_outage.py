"""Tasks while the state store blinks: a real valkey-server stopped (or frozen with SIGSTOP), a real SQLite file
held by another connection's `BEGIN EXCLUSIVE`.

* A task whose job ends while the store is away keeps its result: the instance that ran it answers for it from
  what it kept and stores it once the store answers (not: its end dropped, the task read failed later); an
  instance that stops tries once more and says how many it could not store; one whose TTL passed is dropped, said.
* An outage longer than the lease fails no live instance's task: a lease is not taken for dead until its owner
  has had a full lease since the store came back; a job's end that the store refuses is said in one line.
* A frozen Redis costs the task requests of a process one timeout, not one each; a command Redis refuses (not an
  outage) leaves the breaker closed for every store.
* The SQLite task store warns once per outage, and once when it is back.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import redis
from mcp_types import CallToolResult, TextContent

from harness.valkey import ValkeyProcess
from hive_mcp.state_store import TIMEOUT_S, StateStore
from hive_mcp.tasks import TaskEngine, TaskRecord
from hive_mcp.tasks.redis_store import RedisTaskStore
from hive_mcp.tasks.engine import INSTANCE_GONE, TasksUnavailable, TaskStore
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from tests.conftest_valkey import Tick, valkey_binary, wait_for

pytestmark = pytest.mark.anyio
WAIT = 10.0
LEASE_S = 1.0
KEEPS = ("--appendonly", "yes")
"""A valkey-server stopped and started again keeps its keys (its append-only file), as a restarted Redis does."""
BUSY_S = 0.1
"""The SQLite busy timeout of the stores here: a locked file fails a write within it, not within 5 s."""


def answer(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


class Blink:
    """A task store that goes away and comes back: Redis (this test's own valkey-server, stopped and started),
    or SQLite (its file held by another connection's `BEGIN EXCLUSIVE`: every write waits, then fails)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "tasks.sqlite3"
        self.prefix = f"t{uuid.uuid4().hex[:8]}:"
        self.server = ValkeyProcess(valkey_binary(), extra=KEEPS) if kind == "redis" else None
        self._holder: sqlite3.Connection | None = None

    def store(self) -> TaskStore:
        """Another store object on the same storage (another instance's, or a reader's)."""
        if self.server is not None:
            return RedisTaskStore(self.server.url, prefix=self.prefix)
        return SQLiteTaskStore(self.path, busy_timeout_s=BUSY_S)

    def away(self) -> None:
        if self.server is not None:
            self.server.stop()
            return
        self._holder = sqlite3.connect(self.path, isolation_level=None, timeout=WAIT)
        self._holder.execute("BEGIN EXCLUSIVE")

    def back(self) -> None:
        if self.server is not None:
            self.server.start()
            return
        assert self._holder is not None
        self._holder.execute("ROLLBACK")
        self._holder.close()
        self._holder = None


@pytest.fixture(params=["sqlite", "redis"])
def blink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Blink]:
    b = Blink(request.param, tmp_path)
    if b.server is not None:
        b.server.start()
    try:
        yield b
    finally:
        if b.server is not None:
            b.server.stop()
        elif b._holder is not None:
            b.back()


@pytest.fixture
def own_valkey() -> Iterator[ValkeyProcess]:
    """A valkey-server of this test alone: stopping or freezing it opens the breaker of its URL only."""
    with ValkeyProcess(valkey_binary(), extra=KEEPS) as server:
        yield server


async def breaker_closed(url: str) -> None:
    """Until this process's state store for `url` has heard Redis again (its probe closes the breaker)."""
    assert await anyio.to_thread.run_sync(StateStore.shared(url).wait_usable, WAIT), "the breaker stayed open"


async def test_a_task_that_ends_while_the_store_is_away_keeps_its_result(blink: Blink) -> None:
    engine = TaskEngine(blink.store(), lease_s=LEASE_S, tick_s=0.05)
    release, told = anyio.Event(), list[TaskRecord]()

    async def job() -> CallToolResult:
        await release.wait()
        return answer("kept")

    async def on_end(ended: TaskRecord) -> None:
        told.append(ended)

    task = await engine.start("alice", "complete", job, on_end=on_end)
    blink.away()
    release.set()
    await wait_for(lambda: not engine.running(), WAIT)  # the job has ended, its end not stored
    held = await engine.get("alice", task.task_id)  # this instance answers from the end it kept
    assert held.status == "completed" and held.result is not None, held
    assert held.result["content"] == [{"type": "text", "text": "kept"}]
    with anyio.fail_after(WAIT):
        assert (await engine.wait("alice", task.task_id)).status == "completed"  # tasks/result does not block
    assert [t.status for t in told] == ["completed"]  # the status notification went out
    blink.back()
    if blink.server is not None:
        await breaker_closed(blink.server.url)
    reader = blink.store()

    async def stored() -> bool:
        got = await reader.get(task.task_id, time.time())
        return got is not None and got.status == "completed"

    await wait_for(stored, WAIT)  # the kept end reached the store once it answered
    got = await reader.get(task.task_id, time.time())
    assert got is not None and got.result is not None and got.result["content"][0]["text"] == "kept"
    await engine.aclose()
    await reader.aclose()


async def test_an_instance_that_stops_stores_the_ends_it_kept_or_says_how_many_it_could_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two jobs end while the SQLite file is locked; their ends are kept. The file answers again before the next
    renewal (every 300 s here) and the instance stops: its stop stores the ends it kept. A second instance stops
    while the file is still locked: one line says how many ends it could not store."""
    blink = Blink("sqlite", tmp_path)
    kept, lost = (TaskEngine(blink.store(), lease_s=600, tick_s=300) for _ in range(2))
    release = anyio.Event()

    async def job() -> CallToolResult:
        await release.wait()
        return answer("kept")

    tasks = [await kept.start("alice", "complete", job), await lost.start("alice", "complete", job)]
    caplog.set_level(logging.WARNING, logger="hive_mcp.tasks")
    blink.away()
    release.set()
    await wait_for(lambda: not kept.running() and not lost.running(), WAIT)
    await lost.aclose()
    blink.back()
    await kept.aclose()
    reader = blink.store()
    stored = [await reader.get(t.task_id, time.time()) for t in tasks]
    assert [s.status for s in stored if s is not None] == ["completed", "working"], stored
    said = [r.getMessage() for r in caplog.records if "before this instance stopped" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("1 task(s) ended"), said
    await reader.aclose()


async def test_a_kept_end_whose_ttl_passes_before_the_store_answers_is_dropped_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blink = Blink("sqlite", tmp_path)
    clock = Tick()
    engine = TaskEngine(blink.store(), lease_s=600, tick_s=0.05, clock=clock)
    release = anyio.Event()

    async def job() -> CallToolResult:
        await release.wait()
        return answer("late")

    task = await engine.start("alice", "complete", job, ttl_ms=1000)
    caplog.set_level(logging.WARNING, logger="hive_mcp.tasks")
    blink.away()
    try:
        release.set()
        await wait_for(lambda: not engine.running(), WAIT)
        assert (await engine.get("alice", task.task_id)).status == "completed"
        clock.advance(2)  # past the task's TTL, counted from its end
    finally:
        blink.back()

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "TTL has passed" in r.getMessage()]

    await wait_for(said, WAIT)
    assert len(said()) == 1 and task.task_id in said()[0], said()
    reader = blink.store()
    assert (await reader.get(task.task_id, time.time())).status == "working"  # never stored: its lease runs out
    await reader.aclose()
    await engine.aclose()


async def test_an_outage_longer_than_the_lease_does_not_fail_a_live_instances_task(own_valkey: ValkeyProcess) -> None:
    """B polls A's task through an outage that outlasts the lease: once Redis is back, B reads it working (A, alive,
    renews at its next tick) rather than failed; only when A has let a full lease pass since then is it dead."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    # A renews every 300 s: within this test it has not renewed yet since Redis came back, as a live instance has
    # not for up to a probe and a tick after it does.
    a = TaskEngine(RedisTaskStore(own_valkey.url, prefix=prefix), lease_s=LEASE_S, tick_s=300)
    b = TaskEngine(RedisTaskStore(own_valkey.url, prefix=prefix), lease_s=LEASE_S)
    task = await a.start("alice", "complete", anyio.sleep_forever)
    own_valkey.stop()
    with pytest.raises(TasksUnavailable):  # B's client polls during the outage
        await b.get("alice", task.task_id)
    await wait_for(lambda: time.time() > task.lease, WAIT)  # the outage outlasts A's lease
    restarted = time.monotonic()  # no later than the moment this process hears Redis again
    own_valkey.start()
    await breaker_closed(own_valkey.url)
    got = await b.get("alice", task.task_id)
    assert got.status == "working", got

    async def failed() -> bool:
        return (await b.get("alice", task.task_id)).status == "failed"

    await wait_for(failed, WAIT)  # A let a full lease pass since Redis came back without renewing: taken for dead
    assert time.monotonic() - restarted >= LEASE_S
    assert (await b.get("alice", task.task_id)).message == INSTANCE_GONE
    await a.aclose()
    await b.aclose()


async def test_a_jobs_end_the_store_refuses_is_said(blink: Blink, caplog: pytest.LogCaptureFixture) -> None:
    """A's job ends after B took A's task for dead (its lease ran out, as B's clock reads): the store refuses A's
    end, and A says so in one line rather than dropping the answer without a word."""
    a = TaskEngine(blink.store(), lease_s=600)
    clock = Tick()
    b = TaskEngine(blink.store(), lease_s=600, clock=clock)
    release = anyio.Event()

    async def job() -> CallToolResult:
        await release.wait()
        return answer("too late")

    task = await a.start("alice", "complete", job)
    clock.advance(601)
    assert (await b.get("alice", task.task_id)).status == "failed"
    caplog.set_level(logging.WARNING, logger="hive_mcp.tasks")
    release.set()
    await wait_for(lambda: not a.running(), WAIT)
    said = [r.getMessage() for r in caplog.records if task.task_id in r.getMessage()]
    assert len(said) == 1 and "completed" in said[0] and "refused" in said[0], said
    await a.aclose()
    await b.aclose()


async def test_a_frozen_redis_costs_task_requests_one_timeout_not_one_each(own_valkey: ValkeyProcess) -> None:
    engine = TaskEngine(RedisTaskStore(own_valkey.url, prefix=f"t{uuid.uuid4().hex[:8]}:"))
    own_valkey.freeze()
    try:
        waited = []
        for _ in range(4):
            started = time.monotonic()
            with pytest.raises(TasksUnavailable):
                await engine.get("alice", "some-task")
            waited.append(time.monotonic() - started)
    finally:
        own_valkey.thaw()
    assert waited[0] >= TIMEOUT_S * 0.9, waited  # the first meets the frozen Redis and waits its timeout
    assert all(w < TIMEOUT_S / 2 for w in waited[1:]), waited  # the breaker is open: the others ask nothing
    await breaker_closed(own_valkey.url)
    await engine.aclose()


async def test_a_command_redis_refuses_leaves_the_breaker_closed(own_valkey: ValkeyProcess) -> None:
    """A reply that is an error (here WRONGTYPE: the task's key holds a string) says nothing of Redis being away:
    the request fails, every store goes on using Redis."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    with redis.Redis.from_url(own_valkey.url) as r:
        r.set(f"{prefix}task:odd", "not a hash")
    engine = TaskEngine(RedisTaskStore(own_valkey.url, prefix=prefix))
    with pytest.raises(TasksUnavailable):
        await engine.get("alice", "odd")
    assert StateStore.shared(own_valkey.url).usable()
    await engine.aclose()


async def test_the_sqlite_task_store_warns_once_per_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blink = Blink("sqlite", tmp_path)
    engine = TaskEngine(blink.store())
    first = await engine.start("alice", "complete", anyio.sleep_forever)  # the file exists, with its schema
    caplog.set_level(logging.WARNING, logger="hive_mcp.tasks")
    blink.away()
    try:
        for _ in range(3):
            with pytest.raises(TasksUnavailable):
                await engine.start("alice", "complete", anyio.sleep_forever)
    finally:
        blink.back()
    second = await engine.start("alice", "complete", anyio.sleep_forever)
    lines = [r.getMessage() for r in caplog.records if r.name == "hive_mcp.tasks"]
    away = [line for line in lines if "unavailable" in line]
    back = [line for line in lines if "is back" in line]
    assert len(away) == 1 and str(blink.path) in away[0] and "OperationalError" in away[0], lines
    assert len(back) == 1, lines
    for task in (first, second):
        await engine.cancel("alice", task.task_id)
    await engine.aclose()
