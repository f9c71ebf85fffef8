"""The failure-dump store: format, privacy, atomicity, retention and listing."""

from __future__ import annotations

import base64
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
from hive_mcp.dumps import (
    REDACTED,
    AttemptRecord,
    DumpCorrupt,
    DumpLookupError,
    DumpNotFound,
    DumpStore,
    FailureDump,
    InvalidCursor,
    InvalidDumpId,
    default_dump_dir,
    is_valid_dump_id,
    make_dump_id,
    strip_credentials,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_dump(
    *,
    timestamp: datetime | None = None,
    model: str = "openai/gpt-4o-mini",
    error_type: str = "rate_limit",
    outcome: str = "gave_up",
    messages: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> FailureDump:
    ts = timestamp or datetime.now(UTC)
    return FailureDump(
        timestamp=ts,
        model=model,
        error_type=error_type,
        outcome=outcome,  # type: ignore[arg-type]
        attempts=[
            AttemptRecord(time=ts, error_type=error_type, status=429, message="slow down", delay_s=1.5),
            AttemptRecord(time=ts, error_type=error_type, status=429, message="still slow", delay_s=0.0),
        ],
        messages=messages if messages is not None else [{"role": "user", "content": "hello"}],
        **kw,
    )


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "dumps"


@pytest.fixture
def store(store_dir: Path) -> DumpStore:
    # No age limit by default so fixed test timestamps are not pruned.
    return DumpStore(store_dir, max_age=None)


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
# Secrets
# ---------------------------------------------------------------------------


def all_bytes(d: Path) -> bytes:
    return b"".join(p.read_bytes() for p in d.iterdir())


def test_secrets_never_written(store_dir: Path) -> None:
    secret = "hunter2-not-a-known-key-shape-XYZ"
    late_secret = "another.configured.secret.value"
    quoted_secret = 'pa"ss\\word-1234'
    store = DumpStore(store_dir, secrets=[secret, "short"], max_age=None)
    store.add_secret(late_secret)
    store.add_secret(quoted_secret)
    anthropic_key = "sk-ant-api03-" + "A" * 40
    openai_key = "sk-proj-" + "b" * 40
    dump = FailureDump(
        timestamp=T0,
        model="openai/gpt-4o",
        api_base=f"https://user:{secret}@proxy.example.com/v1?api_key={secret}&token=abc&api-version=2024",
        error_type="auth",
        outcome="not_retried",
        attempts=[AttemptRecord(time=T0, error_type="auth", status=401, message=f"Invalid key {secret}")],
        messages=[
            {"role": "system", "content": f"the key is {secret} and {late_secret}"},
            {"role": "user", "content": f"try {anthropic_key} or {openai_key} or Bearer abcdefghijklmnop"},
            {"role": "user", "content": f"quoted {quoted_secret}"},
            {
                "role": "user",
                "content": "headers",
                "extra_headers": {
                    "Authorization": "Basic dXNlcjpwYXNz",
                    "x-api-key": "plainvalue",
                    "API_KEY": "plainvalue",
                    "Proxy-Authorization": "plainvalue",
                    "api-key": "plainvalue",
                },
            },
        ],
        tools=[{"type": "function", "function": {"name": "f", "description": secret}}],
        response_format={"type": "json_schema", "note": late_secret},
    )
    dump_id = store.write(dump)
    assert dump_id is not None
    blob = all_bytes(store_dir)
    for leaked in (secret, late_secret, anthropic_key, openai_key, "abcdefghijklmnop", "dXNlcjpwYXNz", "plainvalue"):
        assert leaked.encode() not in blob, leaked
    assert quoted_secret.encode() not in blob
    assert json.dumps(quoted_secret)[1:-1].encode() not in blob
    back = store.read(dump_id)  # still valid JSON
    assert back.api_base == "https://proxy.example.com/v1?api-version=2024"
    headers = back.messages[3]["extra_headers"]
    assert set(headers.values()) == {REDACTED}
    assert REDACTED in back.messages[0]["content"]
    assert back.messages[1]["content"] == f"try {REDACTED} or {REDACTED} or Bearer {REDACTED}"


def test_text_level_check_catches_what_the_walk_missed(store_dir: Path) -> None:
    secret = 'a "quoted" secret value'
    store = DumpStore(store_dir, secrets=[secret])
    dump_id = make_dump_id(T0, "auth", "m", "00000000")
    # Unredacted data, as if the structural walk had missed something.
    payload = store._serialize({"note": f"x {secret} y", "key sk-" + "z" * 20: 1}, dump_id)
    text = payload.decode()
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert "sk-zzzz" not in text
    assert json.loads(text) == {"note": f"x {REDACTED} y", f"key {REDACTED}": 1, "id": dump_id}


def test_secrets_the_walk_cannot_see_are_still_redacted(store_dir: Path) -> None:
    """A secret in an object's repr, in a dict key, or right after a newline: the text scan sees them all."""
    secret = "plain-configured-value-77"
    openai_key = "sk-proj-" + "c" * 30

    class Opaque:
        def __repr__(self) -> str:
            return f"<Opaque {secret} {openai_key}>"

    store = DumpStore(store_dir, secrets=[secret], max_age=None)
    dump = make_dump(
        messages=[
            {"role": "user", "content": f"first line\n{openai_key}\n", "meta": Opaque()},
            {"role": "user", "content": "x", f"key {secret}": 1},
        ]
    )
    dump_id = store.write(dump)
    assert dump_id is not None
    blob = all_bytes(store_dir)
    assert secret.encode() not in blob and openai_key.encode() not in blob
    back = store.read(dump_id)
    assert back.messages[0]["content"] == f"first line\n{REDACTED}\n"
    assert back.messages[0]["meta"] == f"<Opaque {REDACTED} {REDACTED}>"
    assert f"key {REDACTED}" in back.messages[1]


def test_short_secrets_are_ignored(store_dir: Path) -> None:
    store = DumpStore(store_dir, secrets=["user"], max_age=None)
    dump_id = store.write(make_dump(messages=[{"role": "user", "content": "user text"}]))
    assert dump_id is not None
    assert store.read(dump_id).messages[0] == {"role": "user", "content": "user text"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, None),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("https://u:p@host:8443/v1", "https://host:8443/v1"),
        (
            "https://host/v1?api_key=K&key=K&access_token=T&sig=S&api-version=2024-01-01",
            "https://host/v1?api-version=2024-01-01",
        ),
        ("https://host/v1?code=C&tenant=T&x=1", "https://host/v1"),  # any query value may be a key
        ("http://host/v1#access_token=T", "http://host/v1"),
        ("http://[::1/v1", REDACTED),
    ],
)
def test_strip_credentials(url: str | None, expected: str | None) -> None:
    assert strip_credentials(url) == expected


def test_failure_dump_never_holds_credentialed_api_base() -> None:
    dump = make_dump(api_base="https://me:pw@host/v1?api_key=abc")
    assert dump.api_base == "https://host/v1"


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
