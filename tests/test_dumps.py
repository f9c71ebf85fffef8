"""The failure-dump store's files: their format and ids, private and atomic writes, a directory it cannot write,
retention, and deleting, purging and the listeners told of each change."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import hive_mcp.dumps.format as format_mod
import hive_mcp.dumps.store as store_mod
from hive_mcp.dumps.watch import DumpDirectoryWatch
from hive_mcp.dumps import DumpNotFound, DumpStore, default_dump_dir, is_valid_dump_id, make_dump_id
from tests.conftest_dumps import T0, make_dump, store_without_age_limit

store = pytest.fixture(store_without_age_limit)


def visible_files(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


# ---------------------------------------------------------------------------
# Format and round trip
# ---------------------------------------------------------------------------


def test_round_trip_write_read(store: DumpStore) -> None:
    dump = make_dump(
        timestamp=T0,
        api_base="https://api.example.com/v1",
        estimated_tokens=1234,
        token_estimate_method="chars/4",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        max_tokens=100,
        temperature=0.2,
        stream=True,
        response_format={"type": "json_object"},
        request_keys=["model", "messages", "stream"],
    )
    dump_id = store.write(dump)
    assert dump_id is not None and is_valid_dump_id(dump_id)
    assert dump.id == dump_id  # filled in on the caller's object
    back = store.read(dump_id)
    assert back == dump
    assert back.message_count == 1
    assert back.attempts[0].status == 429 and back.attempts[0].delay_s == 1.5
    raw = json.loads(store.read_text(dump_id))
    assert raw["id"] == dump_id
    assert raw["litellm_version"] and raw["hive_mcp_version"]


def test_id_format_comes_from_dump_fields(store: DumpStore) -> None:
    dump_id = store.write(make_dump(timestamp=T0, model="anthropic/claude 3.5:latest", error_type="Empty-Stream"))
    assert dump_id is not None
    ts, et, slug, rand = dump_id.split(".")
    assert ts == "20260301T120000000000Z"
    assert et == "empty_stream"
    assert slug == "anthropic_claude_3_5_latest"
    assert len(rand) == 8
    assert make_dump_id(T0, "", "", "0123abcd") == "20260301T120000000000Z.unknown.unknown.0123abcd"
    assert len(make_dump_id(T0, "x", "m" * 500).split(".")[2]) == 64


def test_naive_timestamp_is_utc(store: DumpStore) -> None:
    dump_id = store.write(make_dump(timestamp=datetime(2026, 3, 1, 12, 0, 0)))
    assert dump_id is not None and dump_id.startswith("20260301T120000000000Z.")
    assert store.read(dump_id).timestamp == T0


def test_is_valid_dump_id() -> None:
    good = "20260301T120000123456Z.rate_limit.openai_gpt-4o.0123abcd"
    assert is_valid_dump_id(good)
    for bad in [
        good + "\n",
        good.replace("2026", "２０２６"),  # non-ASCII digits
        good.replace("rate_limit", "Rate_limit"),
        good.replace("openai_gpt-4o", "openai/gpt-4o"),
        good.replace("0123abcd", "0123ABCD"),
        "../" + good,
        "",
        None,
        123,
    ]:
        assert not is_valid_dump_id(bad), bad


def test_default_dump_dir() -> None:
    assert default_dump_dir({"HOME": "/h"}) == Path("/h/.hive/failed_requests")
    assert default_dump_dir({"HOME": "/h", "HIVE_HOME": "/hh"}) == Path("/hh/failed_requests")
    assert default_dump_dir({"HOME": "/h", "HIVE_HOME": "/hh", "HIVE_MCP_DUMP_DIR": "/d"}) == Path("/d")
    assert default_dump_dir({"HOME": "/h", "HIVE_HOME": "", "HIVE_MCP_DUMP_DIR": ""}) == Path(
        "/h/.hive/failed_requests"
    )


# ---------------------------------------------------------------------------
# Permissions and atomicity
# ---------------------------------------------------------------------------


def test_file_and_directory_modes(store: DumpStore, store_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        dump_id = store.write(make_dump())
    finally:
        os.umask(old)
    assert dump_id is not None
    assert stat.S_IMODE(os.stat(store_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store_dir / f"{dump_id}.json").st_mode) == 0o600


def test_existing_directory_is_made_private(store_dir: Path) -> None:
    store_dir.mkdir(mode=0o755)
    os.chmod(store_dir, 0o755)
    assert DumpStore(store_dir).write(make_dump()) is not None
    assert stat.S_IMODE(os.stat(store_dir).st_mode) == 0o700


def test_failed_link_leaves_no_dump(store: DumpStore, store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_link(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(store_mod.os, "link", broken_link)
    assert store.write(make_dump()) is None
    assert os.listdir(store_dir) == []  # neither a dump nor the temp file
    assert store.count() == 0


def test_disk_full_during_write_leaves_no_dump(
    store: DumpStore, store_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "fsync", full)
    with caplog.at_level(logging.WARNING, logger="hive_mcp.dumps"):
        assert store.write(make_dump()) is None
    assert os.listdir(store_dir) == []
    assert any("No space left" in r.getMessage() for r in caplog.records)


def test_leftover_temp_file_is_ignored(store: DumpStore, store_dir: Path) -> None:
    real = store.write(make_dump(timestamp=T0))
    assert real is not None
    partial_id = make_dump_id(T0 + timedelta(seconds=1), "timeout", "m", "0badc0de")
    # What a crash mid-write leaves: a truncated temp file, never a real name.
    (store_dir / ".hive-dump-00000000deadbeef.tmp").write_text('{"id": "' + partial_id)
    page = store.list()
    assert [s.id for s in page.items] == [real]
    assert store.count() == 1
    with pytest.raises(DumpNotFound):
        store.read(partial_id)


def test_stale_temp_files_cleaned_on_prune(store: DumpStore, store_dir: Path) -> None:
    store_dir.mkdir(mode=0o700)
    stale = store_dir / ".hive-dump-00000000deadbeef.tmp"
    fresh = store_dir / ".hive-dump-00000000cafebabe.tmp"
    foreign = store_dir / ".someone-else.tmp"
    for p in (stale, fresh, foreign):
        p.write_text("{")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(foreign, (two_hours_ago, two_hours_ago))
    assert store.write(make_dump()) is not None
    assert not stale.exists()
    assert fresh.exists()  # may be a write in flight
    assert foreign.exists()  # not ours


def test_concurrent_writes_get_distinct_names(store: DumpStore, store_dir: Path) -> None:
    n = 200
    barrier = threading.Barrier(n)
    results: list[str | None] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        # Same timestamp, model and error type for all: only the suffix tells them apart.
        results[i] = store.write(make_dump(timestamp=T0, messages=[{"role": "user", "content": str(i)}]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    assert len(set(results)) == n
    assert len(visible_files(store_dir)) == n
    assert store.count() == n
    contents = {store.read(r).messages[0]["content"] for r in results if r}
    assert contents == {str(i) for i in range(n)}


def test_name_collision_never_overwrites(store: DumpStore, monkeypatch: pytest.MonkeyPatch) -> None:
    suffixes = iter(["00000000", "00000000", "11111111"])
    monkeypatch.setattr(format_mod, "_random_suffix", lambda: next(suffixes))
    first = store.write(make_dump(timestamp=T0, messages=[{"role": "user", "content": "first"}]))
    second = store.write(make_dump(timestamp=T0, messages=[{"role": "user", "content": "second"}]))
    assert first is not None and second is not None
    assert first.endswith(".00000000") and second.endswith(".11111111")
    assert store.read(first).messages[0]["content"] == "first"
    assert store.read(second).messages[0]["content"] == "second"


# ---------------------------------------------------------------------------
# Unwritable directory
# ---------------------------------------------------------------------------


def test_unwritable_directory_logs_and_returns_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    # Fails even for root: a path under a regular file cannot be created.
    store = DumpStore(blocker / "dumps")
    with caplog.at_level(logging.WARNING, logger="hive_mcp.dumps"):
        assert store.write(make_dump()) is None
    records = [r for r in caplog.records if r.name == "hive_mcp.dumps"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "\n" not in records[0].getMessage()
    assert records[0].exc_info is None
    assert store.count() == 0
    assert store.list().items == []


def test_read_only_filesystem_returns_none(store: DumpStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def ro_open(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(store_mod.os, "open", ro_open)
    assert store.write(make_dump()) is None


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------


def test_retention_by_count_removes_oldest(store_dir: Path) -> None:
    store = DumpStore(store_dir, max_count=3, max_age=None)
    ids = [store.write(make_dump(timestamp=T0 + timedelta(minutes=i))) for i in range(5)]
    assert sorted(visible_files(store_dir)) == sorted(f"{i}.json" for i in ids[2:])


def test_retention_by_bytes_removes_oldest(store_dir: Path) -> None:
    big = "x" * 10_000
    store = DumpStore(store_dir, max_bytes=25_000, max_age=None)
    ids = [
        store.write(make_dump(timestamp=T0 + timedelta(minutes=i), messages=[{"role": "user", "content": big}]))
        for i in range(5)
    ]
    remaining = visible_files(store_dir)
    assert remaining == sorted(f"{i}.json" for i in ids[3:])
    assert sum((store_dir / n).stat().st_size for n in remaining) <= 25_000


def test_retention_by_age(store_dir: Path) -> None:
    store = DumpStore(store_dir, max_age=timedelta(days=30))
    now = datetime.now(UTC)
    old = store.write(make_dump(timestamp=now - timedelta(days=40)))
    recent = store.write(make_dump(timestamp=now - timedelta(days=20)))
    assert old is not None and recent is not None
    assert visible_files(store_dir) == [f"{recent}.json"]
    with pytest.raises(DumpNotFound):
        store.read(old)


def test_invalid_limits_rejected(store_dir: Path) -> None:
    with pytest.raises(ValueError):
        DumpStore(store_dir, max_count=-1)
    with pytest.raises(ValueError):
        DumpStore(store_dir, max_age=timedelta(days=-1))


# ---------------------------------------------------------------------------
# Delete, purge, listeners
# ---------------------------------------------------------------------------


def test_delete(store: DumpStore) -> None:
    dump_id = store.write(make_dump())
    assert dump_id is not None
    assert store.delete(dump_id) is True
    assert store.delete(dump_id) is False
    assert store.count() == 0


def test_purge(store: DumpStore) -> None:
    now = datetime.now(UTC)
    old = [store.write(make_dump(timestamp=now - timedelta(days=10 + i))) for i in range(3)]
    new = [store.write(make_dump(timestamp=now - timedelta(hours=i))) for i in range(2)]
    assert store.purge(older_than=timedelta(days=5)) == 3
    assert {s.id for s in store.list().items} == set(new)
    assert all(o not in {s.id for s in store.list().items} for o in old)
    assert store.purge() == 2
    assert store.count() == 0
    assert store.purge() == 0


def test_listeners(store_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = DumpStore(store_dir, max_age=None)
    calls: list[str] = []
    store.add_listener(lambda: calls.append("a"))

    ids = [store.write(make_dump(timestamp=T0 + timedelta(seconds=i))) for i in range(3)]
    assert calls == ["a"] * 3  # one per write

    calls.clear()
    tight = DumpStore(store_dir, max_count=1, max_age=None)
    tight.add_listener(lambda: calls.append("prune"))
    assert tight.prune() == 2
    assert calls == ["prune"]
    assert tight.prune() == 0
    assert calls == ["prune"]  # nothing removed, no notification

    calls.clear()
    assert store.delete(ids[2] or "") is True
    assert store.delete(ids[2] or "") is False
    assert calls == ["a"]

    calls.clear()
    assert store.purge() == 0
    assert calls == []

    def broken() -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    with caplog.at_level(logging.WARNING, logger="hive_mcp"):
        assert store.write(make_dump()) is not None  # a broken listener does not break writes
    assert calls == ["a"]
    assert any(r.exc_info and "listener bug" in str(r.exc_info[1]) for r in caplog.records)
    store.remove_listener(broken)


class Hits:
    def __init__(self) -> None:
        self.count = 0

    def hit(self) -> None:
        self.count += 1


def test_a_bound_method_listener_is_removed_by_the_same_method(store_dir: Path) -> None:
    """`obj.method` is a new object at each access: removing it by the same method (not the same object)
    stops the calls, as it does for every other change source (one `Listeners`)."""
    store = DumpStore(store_dir, max_age=None)
    kept, dropped = Hits(), Hits()
    store.add_listener(kept.hit)
    store.add_listener(dropped.hit)
    store.remove_listener(dropped.hit)
    assert store.write(make_dump()) is not None
    assert (kept.count, dropped.count) == (1, 0)


def test_a_dump_watch_stops_when_its_bound_method_listener_is_removed(store_dir: Path) -> None:
    watch = DumpDirectoryWatch(DumpStore(store_dir, max_age=None), interval_s=60)
    before = set(threading.enumerate())
    hits = Hits()
    watch.add_listener(hits.hit)
    (thread,) = [t for t in threading.enumerate() if t not in before and t.name == "hive-mcp-dump-watch"]
    watch.remove_listener(hits.hit)
    thread.join(timeout=10)  # the last listener gone, its thread is told to stop (not left for its 60 s wait)
    assert not thread.is_alive()
