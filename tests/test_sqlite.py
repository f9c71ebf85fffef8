"""The embedded stores' SQLite file (`hive_mcp.sqlite`): opening it while other connections use it, and a
store's work on its database's own thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from hive_mcp import sqlite as sqlite_module
from hive_mcp.sqlite import Database, connect
from tests.clients import WAIT


def _open_beside(path: Path, busy_timeout_s: float) -> tuple[threading.Thread, threading.Event, list[object]]:
    """`connect(path)` started in a thread: the thread, an event set when it is done, and what it gave (a
    connection's journal mode, or the error)."""
    done = threading.Event()
    out: list[object] = []

    def run() -> None:
        try:
            conn = connect(path, busy_timeout_s)
            out.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            conn.close()
        except sqlite3.Error as exc:
            out.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done, out


def _writer_before_wal(path: Path) -> sqlite3.Connection:
    """A connection holding the write lock of a file not yet in WAL mode: another process's, an instant before
    it switches the file to WAL (the switch itself holds that lock)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    return other


def test_opening_waits_for_a_writer_on_a_file_not_yet_in_wal_mode(tmp_path: Path) -> None:
    """SQLite answers the switch to WAL with "database is locked" at once, without its busy handler, while
    another connection holds the write lock: ten stores opening one fresh file together failed now and then."""
    path = tmp_path / "store.sqlite3"
    other = _writer_before_wal(path)
    thread, done, out = _open_beside(path, busy_timeout_s=30.0)
    assert not done.wait(0.3), out  # still waiting on the writer, not failed
    other.execute("COMMIT")
    thread.join()
    assert out == ["wal"]
    other.close()


def test_a_writer_that_holds_on_past_the_busy_timeout_fails_the_open(tmp_path: Path) -> None:
    """The wait is the busy timeout's, as for any other lock: then the open fails, as SQLite says."""
    path = tmp_path / "store.sqlite3"
    other = _writer_before_wal(path)
    thread, done, out = _open_beside(path, busy_timeout_s=0.2)
    assert done.wait(30)
    thread.join()
    other.close()
    assert len(out) == 1 and isinstance(out[0], sqlite3.OperationalError)
    assert "locked" in str(out[0])


def _database(tmp_path: Path) -> Database:
    return Database(tmp_path / "store.sqlite3", 5.0, lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS t (x)"))


def _count(db: Database) -> int:
    return db.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])


@pytest.mark.anyio
async def test_a_database_runs_its_work_off_the_event_loop_on_one_thread(tmp_path: Path) -> None:
    """SQLite blocks: the loop never runs it. One thread does it all, so one connection is used by one thread."""
    db = _database(tmp_path)
    threads = {await db.call(lambda conn: threading.get_ident()) for _ in range(5)}
    assert len(threads) == 1 and threading.get_ident() not in threads
    await db.aclose()


@pytest.mark.anyio
async def test_work_is_done_in_the_order_it_was_asked_for(tmp_path: Path) -> None:
    db = _database(tmp_path)
    done: list[int] = []
    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(db.call, lambda conn, n=n: done.append(n))
    assert done == list(range(20))
    await db.aclose()


@pytest.mark.anyio
async def test_a_cancelled_caller_waits_for_the_write_it_began(tmp_path: Path) -> None:
    """As with `anyio.to_thread.run_sync`: a caller never leaves while its transaction may still commit."""
    db = _database(tmp_path)
    started, release = threading.Event(), threading.Event()
    left_after: list[int] = []

    def write(conn: sqlite3.Connection) -> None:
        started.set()
        assert release.wait(WAIT)
        conn.execute("INSERT INTO t VALUES (1)")

    async def caller(scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await db.call(write)
            finally:
                left_after.append(_count(db))

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(caller, scope)
        assert await anyio.to_thread.run_sync(started.wait, WAIT)
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert left_after == []  # still waiting for its write
        release.set()
    assert left_after == [1]
    await db.aclose()


@pytest.mark.anyio
async def test_an_error_reaches_the_caller_and_the_next_call_starts_afresh(tmp_path: Path) -> None:
    db = _database(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await db.call(lambda conn: conn.execute("SELECT * FROM missing"))
    assert await db.call(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
    await db.aclose()


def test_callers_on_different_event_loops_each_get_their_answer(tmp_path: Path) -> None:
    db = _database(tmp_path)
    for n in range(3):
        assert anyio.run(db.call, lambda conn, n=n: n) == n
    db.close()


@pytest.mark.anyio
async def test_an_idle_thread_ends_and_the_next_call_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread is left behind by a store nobody closed."""
    monkeypatch.setattr(sqlite_module, "IDLE_S", 0.01)
    db = _database(tmp_path)
    first = await db.call(lambda conn: threading.current_thread())
    await anyio.to_thread.run_sync(first.join, WAIT)
    assert not first.is_alive()
    second = await db.call(lambda conn: threading.current_thread())
    assert second is not first and second.is_alive()
    await db.aclose()
