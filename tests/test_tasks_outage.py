"""Tasks while the state store blinks: a real valkey-server stopped (or frozen with SIGSTOP), a real SQLite file
held by another connection's `BEGIN EXCLUSIVE`.

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

from harness.valkey import ValkeyProcess
from hive_mcp.state_store import TIMEOUT_S, StateStore
from hive_mcp.tasks import TaskEngine, open_task_store
from hive_mcp.tasks.engine import TasksUnavailable, TaskStore
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from tests.conftest_valkey import valkey_binary

pytestmark = pytest.mark.anyio
WAIT = 10.0
KEEPS = ("--appendonly", "yes")
"""A valkey-server stopped and started again keeps its keys (its append-only file), as a restarted Redis does."""
BUSY_S = 0.1
"""The SQLite busy timeout of the stores here: a locked file fails a write within it, not within 5 s."""


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
            return open_task_store(self.server.url, prefix=self.prefix)
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


async def test_a_frozen_redis_costs_task_requests_one_timeout_not_one_each(own_valkey: ValkeyProcess) -> None:
    engine = TaskEngine(open_task_store(own_valkey.url, prefix=f"t{uuid.uuid4().hex[:8]}:"))
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
    engine = TaskEngine(open_task_store(own_valkey.url, prefix=prefix))
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
