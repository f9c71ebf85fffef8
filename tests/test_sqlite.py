"""Opening the embedded stores' SQLite file (`hive_mcp.sqlite`) while other connections use it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from hive_mcp.sqlite import connect


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
