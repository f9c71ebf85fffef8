"""Each failure dump belongs to the caller whose call left it, in the directory and in Redis alike.

`CallerDumps` is the one way the MCP layer and the dashboard reach the store:
a caller lists, counts, reads and deletes only its own; another caller's id
answers exactly as an unknown one; `None` (admins, the stdio user) sees every
dump. A dump written before dumps carried a caller is an admin's alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hive_mcp.dumps import CallerDumps, DumpNotFound, DumpStore
from hive_mcp.dumps.redis_store import RedisDumpStore
from tests.conftest import sample_dump
from harness.valkey import ValkeyProcess

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["directory", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DumpStore]:
    if request.param == "directory":
        yield DumpStore(tmp_path / "dumps")
        return
    server: ValkeyProcess = request.getfixturevalue("valkey_server")
    yield RedisDumpStore(server.url, tmp_path / "dumps", prefix=f"test-{uuid.uuid4().hex[:8]}:")


def write(store: DumpStore, caller: str | None, i: int) -> str:
    dump = sample_dump(NOW - timedelta(minutes=60 - i), content=f"{caller}'s message {i}")
    dump.caller = caller
    dump_id = store.write(dump)
    assert dump_id is not None
    return dump_id


def ids(view: CallerDumps, **filters: object) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = view.list(limit=2, cursor=cursor, **filters)  # small pages: the cursor must skip others' dumps too
        out += [s.id for s in page.items]
        if (cursor := page.next_cursor) is None:
            return out


def unknown_like(dump_id: str) -> str:
    return dump_id[:-8] + ("00000000" if not dump_id.endswith("00000000") else "ffffffff")


def not_found_text(view: CallerDumps, dump_id: str) -> str:
    with pytest.raises(DumpNotFound) as err:
        view.read(dump_id)
    with pytest.raises(DumpNotFound) as err_text:
        view.read_text(dump_id)
    assert str(err.value) == str(err_text.value)
    return str(err.value).replace(dump_id, "<id>")


def test_a_caller_lists_counts_and_reads_only_its_own(any_store: DumpStore) -> None:
    alice = [write(any_store, "alice", i) for i in range(0, 10, 2)]
    bob = [write(any_store, "bob", i) for i in range(1, 10, 2)]
    as_alice, as_bob, as_admin = (CallerDumps(any_store, who) for who in ("alice", "bob", None))
    assert ids(as_alice) == alice[::-1] and ids(as_bob) == bob[::-1]
    assert ids(as_admin) == sorted(alice + bob, reverse=True)
    assert (as_alice.count(), as_bob.count(), as_admin.count()) == (5, 5, 10)
    assert ids(as_alice, model="openai/gpt-4o-mini") == alice[::-1]
    assert "alice's message 0" in as_alice.read_text(alice[0]) and as_admin.read(alice[0]).caller == "alice"
    assert not_found_text(as_bob, alice[0]) == not_found_text(as_bob, unknown_like(alice[0]))


def test_a_caller_deletes_only_its_own(any_store: DumpStore) -> None:
    mine, theirs = write(any_store, "alice", 1), write(any_store, "bob", 2)
    as_alice = CallerDumps(any_store, "alice")
    assert as_alice.delete(theirs) is False and as_alice.delete(unknown_like(theirs)) is False
    assert CallerDumps(any_store, None).read(theirs).caller == "bob"  # still there
    assert as_alice.delete(mine) is True
    assert CallerDumps(any_store, None).count() == 1


def test_a_dump_without_a_caller_is_seen_by_admins_alone(any_store: DumpStore) -> None:
    old = write(any_store, None, 1)  # written before dumps carried their caller
    for who in ("alice", "local-looking", "bob"):
        view = CallerDumps(any_store, who)
        assert ids(view) == [] and view.delete(old) is False
        assert not_found_text(view, old) == not_found_text(view, unknown_like(old))
    assert ids(CallerDumps(any_store, None)) == [old]


def test_a_change_names_the_callers_whose_dumps_it_touched(any_store: DumpStore) -> None:
    """What the notifier asks so that only they hear of it: a write, a delete, a prune each name their callers."""
    assert any_store.changed_callers() == frozenset()
    alices = write(any_store, "alice", 1)
    write(any_store, None, 2)  # nobody's: admins and the stdio user hear of every change anyway
    assert any_store.changed_callers() == {"alice"}
    assert any_store.changed_callers() == frozenset()  # asked once: told once
    bobs = write(any_store, "bob", 3)
    assert any_store.delete(alices) and any_store.changed_callers() == {"alice", "bob"}
    any_store.max_count = 0
    assert any_store.prune() == 2 and any_store.changed_callers() == {"bob"}
    assert bobs not in any_store.ids()


def test_the_dump_watch_names_the_callers_of_what_another_process_wrote_or_removed(tmp_path: Path) -> None:
    """Two stores on one directory, as two workers: the watch on one tells whose dumps the other changed."""
    import threading

    from hive_mcp.dumps.watch import DumpDirectoryWatch

    here, there = DumpStore(tmp_path / "dumps"), DumpStore(tmp_path / "dumps")
    watch = DumpDirectoryWatch(here, interval_s=0.01)
    heard = threading.Event()
    watch.add_listener(heard.set)

    def callers_heard() -> set[str]:
        """What the watch names over the changes it tells of (a write is a temporary file, then its rename)."""
        got: set[str] = set()
        while not got:
            assert heard.wait(10), "the watch told of no change"
            heard.clear()
            got |= watch.changed_callers()
        return got

    try:
        alices = write(there, "alice", 1)
        assert callers_heard() == {"alice"}
        assert there.delete(alices)
        assert callers_heard() == {"alice"}
    finally:
        watch.remove_listener(heard.set)


def test_a_dump_watch_whose_listing_fails_warns_and_still_tells_of_the_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listing that raises (here, the store's) costs only the callers' names: the watch warns in one line,
    still tells its listeners that the dumps changed, and goes on watching."""
    import threading

    from hive_mcp.dumps.watch import DumpDirectoryWatch

    class Unlistable(DumpStore):
        failing = False

        def ids(self) -> list[str]:
            if self.failing:
                raise PermissionError(13, "Permission denied", str(self.directory))
            return super().ids()

    here, there = Unlistable(tmp_path / "dumps"), DumpStore(tmp_path / "dumps")
    watch = DumpDirectoryWatch(here, interval_s=0.01)
    heard = threading.Event()
    watch.add_listener(heard.set)
    try:
        here.failing = True
        for i, caller in enumerate(("alice", "carol")):
            write(there, caller, i)
            assert heard.wait(10), "the watch told of no change"
            heard.clear()
        assert watch.changed_callers() == frozenset()
        warned = [r.getMessage() for r in caplog.records if r.name == "hive_mcp.dumps.watch"]
        assert len(warned) == 1, warned  # one outage, one warning
        assert "could not list the dumps (PermissionError)" in warned[0] and "\n" not in warned[0], warned
        here.failing = False
        heard.clear()
        write(there, "bob", 2)
        while "bob" not in watch.changed_callers():
            assert heard.wait(10), "the watch stopped after a failed listing"
            heard.clear()
        warned = [r.getMessage() for r in caplog.records if r.name == "hive_mcp.dumps.watch"]
        assert len(warned) == 2 and "again" in warned[1], warned
    finally:
        watch.remove_listener(heard.set)
