"""Finding failure dumps: listing newest first with filters and cursors, reading only the page it shows,
skipping a corrupt dump and seeing what other processes add and remove; and reading by id, with malformed,
unknown and escaping ids refused."""

from __future__ import annotations

import base64
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import hive_mcp.dumps.store as store_mod
from hive_mcp.dumps import (
    DumpCorrupt, DumpLookupError, DumpNotFound, DumpStore, FailureDump, InvalidCursor, InvalidDumpId, make_dump_id,
)  # fmt: skip
from tests.conftest_dumps import T0, make_dump, store_without_age_limit

store = pytest.fixture(store_without_age_limit)


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def test_list_newest_first_with_summary_fields(store: DumpStore) -> None:
    ids = [store.write(make_dump(timestamp=T0 + timedelta(seconds=i))) for i in range(5)]
    page = store.list()
    assert [s.id for s in page.items] == list(reversed(ids))
    assert page.next_cursor is None
    s = page.items[0]
    assert s.model == "openai/gpt-4o-mini"
    assert s.error_type == "rate_limit" and s.outcome == "gave_up"
    assert s.attempt_count == 2 and s.message_count == 1
    assert s.timestamp == T0 + timedelta(seconds=4)
    assert s.size_bytes == os.stat(store.directory / f"{s.id}.json").st_size


def test_list_filters(store: DumpStore) -> None:
    a = store.write(make_dump(timestamp=T0, model="openai/gpt-4", error_type="rate_limit"))
    b = store.write(make_dump(timestamp=T0 + timedelta(hours=1), model="openai_gpt-4", error_type="timeout"))
    c = store.write(make_dump(timestamp=T0 + timedelta(hours=2), model="openai/gpt-4", error_type="timeout"))
    d = store.write(make_dump(timestamp=T0 + timedelta(hours=3), model="claude", error_type="empty_response"))

    assert [s.id for s in store.list(error_type="timeout").items] == [c, b]
    # Same slug, different model: the name narrows, the file decides.
    assert [s.id for s in store.list(model="openai/gpt-4").items] == [c, a]
    assert [s.id for s in store.list(model="openai_gpt-4").items] == [b]
    assert [s.id for s in store.list(since=T0 + timedelta(hours=1)).items] == [d, c, b]
    # Naive `since` is UTC.
    assert [s.id for s in store.list(since=datetime(2026, 3, 1, 14, 0)).items] == [d, c]
    assert [s.id for s in store.list(error_type="timeout", model="openai/gpt-4").items] == [c]
    assert store.list(model="nope").items == []


def test_pagination_covers_everything_once(store: DumpStore) -> None:
    ids = {store.write(make_dump(timestamp=T0 + timedelta(seconds=i % 5), model=f"m{i % 3}")) for i in range(25)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list(limit=7, cursor=cursor)
        pages += 1
        seen.extend(s.id for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 4
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == ids
    assert seen == sorted(seen, reverse=True)


def test_pagination_with_model_filter(store: DumpStore) -> None:
    for i in range(6):
        store.write(make_dump(timestamp=T0 + timedelta(seconds=i), model="a/b" if i % 2 else "a_b"))
    first = store.list(model="a/b", limit=2)
    assert len(first.items) == 2 and first.next_cursor
    second = store.list(model="a/b", limit=2, cursor=first.next_cursor)
    assert len(second.items) == 1 and second.next_cursor is None
    assert {s.model for s in first.items + second.items} == {"a/b"}


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "not base64 at all", base64.urlsafe_b64encode(b"../etc/passwd").decode(), "YQ", "x" * 10_000],
)
def test_invalid_cursor(store: DumpStore, cursor: str) -> None:
    store.write(make_dump())
    with pytest.raises(InvalidCursor, match="cursor"):
        store.list(cursor=cursor)


def test_invalid_limit(store: DumpStore) -> None:
    for limit in (0, 201, -1):
        with pytest.raises(ValueError, match="limit"):
            store.list(limit=limit)
    assert store.list(limit=200).items == []


def test_list_missing_directory_is_empty(tmp_path: Path) -> None:
    store = DumpStore(tmp_path / "never-created")
    assert store.list().items == [] and store.count() == 0


def test_listing_many_dumps_reads_only_the_page(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DumpStore(store_dir, max_count=100_000, max_age=None)
    seed = store.write(make_dump(timestamp=T0, model="seed"))
    assert seed is not None
    payload = (store_dir / f"{seed}.json").read_bytes()
    n = 10_000
    for i in range(n):
        name = make_dump_id(T0 + timedelta(microseconds=i + 1), "rate_limit", "openai/gpt-4o-mini", f"{i:08x}")
        fd = os.open(store_dir / f"{name}.json", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, payload)
        os.close(fd)

    reads = 0
    parses = 0
    real_read_raw = DumpStore._read_raw
    real_validate = FailureDump.model_validate_json

    def counting_read_raw(self: DumpStore, dump_id: str) -> tuple[str, int]:
        nonlocal reads
        reads += 1
        return real_read_raw(self, dump_id)

    def counting_validate(data: Any, *a: Any, **kw: Any) -> FailureDump:
        nonlocal parses
        parses += 1
        return real_validate(data, *a, **kw)

    monkeypatch.setattr(DumpStore, "_read_raw", counting_read_raw)
    monkeypatch.setattr(FailureDump, "model_validate_json", staticmethod(counting_validate))

    assert store.count() == n + 1
    assert reads == 0

    page = store.list(limit=20)
    assert len(page.items) == 20 and page.next_cursor
    assert reads <= 21 and parses <= 21

    reads = parses = 0
    since = T0 + timedelta(microseconds=5000)
    page = store.list(limit=20, error_type="rate_limit", since=since, cursor=page.next_cursor)
    assert len(page.items) == 20
    assert reads <= 21 and parses <= 21

    reads = parses = 0
    page = store.list(limit=20, model="seed")  # slug match needs no reads beyond the one match
    assert [s.id for s in page.items] == [seed]
    assert reads <= 2

    reads = parses = 0
    assert store.write(make_dump(timestamp=T0 + timedelta(days=1))) is not None  # prune is name + stat only
    assert reads == 0 and parses == 0


def test_a_kept_scan_still_sees_dumps_added_and_removed_by_others(store: DumpStore, store_dir: Path) -> None:
    first = store.write(make_dump(timestamp=T0))
    second = store.write(make_dump(timestamp=T0 + timedelta(seconds=1)))
    assert first and second
    settled = time.time_ns() - 60 * 10**9
    os.utime(store_dir, ns=(settled, settled))  # the directory has been still for a minute
    assert [s.id for s in store.list().items] == [second, first]
    assert store._sorted_ids is not None  # noqa: SLF001 - the scan is kept: what this test is about

    # Another process (a second server, `hive-mcp dumps purge`) changes the directory.
    third = make_dump_id(T0 + timedelta(seconds=2), "rate_limit", "openai/gpt-4o-mini")
    (store_dir / f"{third}.json").write_bytes((store_dir / f"{first}.json").read_bytes())
    (store_dir / f"{first}.json").unlink()
    assert [s.id for s in store.list().items] == [third, second]
    assert store.count() == 2
    page = store.list(limit=1)
    assert [s.id for s in store.list(limit=1, cursor=page.next_cursor).items] == [second]


def test_corrupt_dump_skipped_in_list_and_reported_on_read(store: DumpStore, store_dir: Path) -> None:
    good = store.write(make_dump(timestamp=T0))
    assert good is not None
    bad = make_dump_id(T0 + timedelta(seconds=1), "timeout", "m", "0badc0de")
    (store_dir / f"{bad}.json").write_text("{not json")
    assert [s.id for s in store.list().items] == [good]
    with pytest.raises(DumpCorrupt):
        store.read(bad)
    assert store.read_text(bad) == "{not json"


# ---------------------------------------------------------------------------
# Reading by id
# ---------------------------------------------------------------------------

BAD_IDS = ["../x", "/etc/passwd", "%2e%2e%2f", "a\x00b", "x" * 10_000, "", "a/b", "a\\b", "."]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_read_refuses_malformed_ids_before_touching_disk(
    store: DumpStore, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(make_dump())

    def no_fs(*a: Any, **kw: Any) -> Any:
        raise AssertionError("filesystem touched")

    with monkeypatch.context() as m:
        for name in ("open", "stat", "lstat", "scandir", "unlink"):
            m.setattr(store_mod.os, name, no_fs)
        m.setattr(Path, "resolve", no_fs)
        with pytest.raises(InvalidDumpId):
            store.read(bad)
        with pytest.raises(InvalidDumpId):
            store.read_text(bad)
        with pytest.raises(InvalidDumpId):
            store.delete(bad)
    with pytest.raises(DumpLookupError):  # one base class to catch
        store.read(bad)
    with pytest.raises(ValueError):
        store.read(bad)


def test_unknown_well_formed_id_is_not_found(store: DumpStore) -> None:
    missing = make_dump_id(T0, "timeout", "m", "00000000")
    with pytest.raises(DumpNotFound) as info:
        store.read(missing)
    assert isinstance(info.value, KeyError) and isinstance(info.value, DumpLookupError)
    with pytest.raises(DumpNotFound):
        store.read_text(missing)


def test_symlink_out_of_directory_is_refused(store: DumpStore, store_dir: Path, tmp_path: Path) -> None:
    store.write(make_dump())
    outside = tmp_path / "outside.json"
    outside.write_text(make_dump().model_dump_json())
    link_id = make_dump_id(T0, "timeout", "m", "0000beef")
    (store_dir / f"{link_id}.json").symlink_to(outside)
    with pytest.raises(DumpLookupError):
        store.read(link_id)
    assert link_id not in {s.id for s in store.list().items}
