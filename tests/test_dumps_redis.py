"""Failure dumps in a real valkey-server (HIVE_MCP_STATE_URL): shared by every store on it, same ids, fields,
retention and API as the directory, and nothing lost while Redis is down."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hive_mcp.dumps import DumpNotFound, DumpStore, InvalidDumpId
from hive_mcp.dumps.redis_store import RedisDumpStore
from harness.processes import child_env
from tests.conftest_dumps import make_dump
from harness.valkey import ValkeyProcess
from tests.cut_relay import CutRelay
from tests.conftest_valkey import valkey_binary

SECRET = "sk-dumps-redis-0123456789SECRET"
NOBODY = 65534
"""The uid a test that needs a file unreadable runs as when it runs as root."""


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


def open_store(server: ValkeyProcess, directory: Path, prefix: str, **limits: object) -> RedisDumpStore:
    return RedisDumpStore(server.url, directory, prefix=prefix, secrets=[SECRET], **{"max_age": None, **limits})


def test_two_instances_share_their_dumps(valkey_server: ValkeyProcess, tmp_path: Path, prefix: str) -> None:
    one = open_store(valkey_server, tmp_path / "one", prefix)
    two = open_store(valkey_server, tmp_path / "two", prefix)
    heard: list[str] = []
    one.add_listener(lambda: heard.append("one"))
    dump_id = one.write(make_dump(messages=[{"role": "user", "content": f"key {SECRET}"}]))
    assert dump_id is not None and heard == ["one"]
    assert not (tmp_path / "one").exists()  # nothing on the disk: it is in Redis

    page = two.list()
    assert [i.id for i in page.items] == [dump_id]
    assert page.items[0].attempt_count == 2 and page.items[0].model == "openai/gpt-4o-mini"
    got = two.read(dump_id)
    assert got.id == dump_id and got.error_type == "rate_limit"
    assert SECRET not in two.read_text(dump_id)  # redacted as a file would be
    assert two.count() == 1
    # The same fields as a directory store writes, for the same dump.
    local = DumpStore(tmp_path / "files", max_age=None, secrets=[SECRET])
    same = local.write(make_dump(messages=[{"role": "user", "content": f"key {SECRET}"}]))
    assert same is not None
    assert local.read(same).model_dump(exclude={"id"}).keys() == got.model_dump(exclude={"id"}).keys()

    with pytest.raises(InvalidDumpId):
        two.read("../etc/passwd")
    assert two.delete(dump_id) is True
    with pytest.raises(DumpNotFound):
        one.read(dump_id)
    assert one.count() == 0


def test_a_shared_dump_names_the_conversation_it_is_moved_to(valkey_server: ValkeyProcess, tmp_path: Path, prefix: str) -> None:
    one = open_store(valkey_server, tmp_path / "one", prefix)
    two = open_store(valkey_server, tmp_path / "two", prefix)
    dump_id = one.write(make_dump(messages=[{"role": "user", "content": f"key {SECRET}"}]))
    assert dump_id is not None
    assert one.set_conversation(dump_id, "conv_" + "F" * 22) is True
    assert two.read(dump_id).conversation_id == "conv_" + "F" * 22  # the shared copy, not a local one
    assert not (tmp_path / "one").exists() and SECRET not in two.read_text(dump_id)
    assert two.list().items[0].id == dump_id and two.count() == 1
    one.delete(dump_id)
    assert one.set_conversation(dump_id, None) is False  # gone: nothing is written back


def test_retention_applies_to_the_shared_dumps(valkey_server: ValkeyProcess, tmp_path: Path, prefix: str) -> None:
    one = open_store(valkey_server, tmp_path / "one", prefix, max_count=3)
    two = open_store(valkey_server, tmp_path / "two", prefix, max_count=3)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ids = [(one if i % 2 else two).write(make_dump(timestamp=start + timedelta(minutes=i))) for i in range(5)]
    assert [i.id for i in one.list().items] == list(reversed(ids[2:]))  # the oldest two pruned, newest first
    old = open_store(valkey_server, tmp_path / "one", prefix, max_count=None)
    assert old.purge(older_than=timedelta(days=1)) == 3  # all are from November
    assert two.count() == 0


def test_while_redis_is_down_dumps_go_to_the_directory_and_move_back(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with ValkeyProcess(valkey_binary()) as server:
        one = open_store(server, tmp_path / "one", prefix)
        two = open_store(server, tmp_path / "two", prefix)
        first = one.write(make_dump())
        server.stop()
        during = one.write(make_dump(error_type="timeout"))
        assert during is not None and (tmp_path / "one" / f"{during}.json").is_file()  # not lost
        assert {i.id for i in one.list().items} == {during}  # what this instance can still see
        assert one.read(during).error_type == "timeout"
        also = one.write(make_dump(error_type="bad_request"))
        server.start()
        assert one._outage.wait_usable(10)  # noqa: SLF001 - the state store's probe heard Redis again
        after = one.write(make_dump(error_type="server_error"))
        # Nothing written meanwhile is lost (`first` went with the test server, restarted without persistence).
        assert first is not None
        assert {i.id for i in two.list().items} == {during, also, after}
        assert not list((tmp_path / "one").glob("*.json"))  # moved into Redis
    outage = [r for r in caplog.records if "is unavailable (" in r.getMessage()]
    assert len(outage) == 1  # one warning per outage, not one per dump
    back = [r for r in caplog.records if "every store uses it again" in r.getMessage()]
    assert len(back) == 1


def test_a_redis_that_answers_writes_with_an_error_keeps_dumps_local_told_once_and_other_stores_unharmed(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis there but refusing writes (out of memory, `maxmemory` with no eviction): no outage of the state
    store, so the breaker every store shares stays closed (conversations and budgets go on) and nothing says Redis
    is away; the dumps go to the local directory, told once however many are written, and move into Redis at the
    first write it takes again."""
    import redis

    from hive_mcp.state_store import StateStore

    with ValkeyProcess(valkey_binary()) as server:
        one = open_store(server, tmp_path / "one", prefix)
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory", 1)  # every write is refused: OOM command not allowed
        kept = [one.write(make_dump(error_type=f"e{i}")) for i in range(4)]
        assert StateStore.shared(server.url).usable()
        assert all(k is not None and (tmp_path / "one" / f"{k}.json").is_file() for k in kept)
        assert one.read(kept[0]).error_type == "e0"
        admin.config_set("maxmemory", 0)
        after = one.write(make_dump(error_type="after"))
        assert {i.id for i in one.list().items} == {*kept, after}
        assert admin.zcard(f"{prefix}dumps") == len(kept) + 1
        assert not list((tmp_path / "one").glob("*.json"))  # moved into Redis
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not [w for w in warnings if "is unavailable (" in w or "every store uses it again" in w], warnings
    refused = [w for w in warnings if "refused" in w and "dump" in w]
    assert len(refused) == 1 and "OutOfMemoryError" in refused[0] and str(tmp_path / "one") in refused[0], warnings


def test_hive_mcp_dumps_list_reads_redis(valkey_server: ValkeyProcess, tmp_path: Path) -> None:
    prefix = "hive-mcp:"  # the CLI's, as every instance's
    store = open_store(valkey_server, tmp_path / "server", prefix)
    dump_id = store.write(make_dump(model="openai/from-redis"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hive_mcp", "dumps", "list"], capture_output=True, text=True, timeout=60,
            env=child_env(HIVE_MCP_STATE_URL=valkey_server.url, HIVE_MCP_DUMP_DIR=str(tmp_path / "empty")),
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        assert dump_id is not None and store.delete(dump_id)
    assert proc.returncode == 0, proc.stderr
    assert dump_id in proc.stdout, proc.stdout


def test_a_dump_is_stored_with_its_index_entry_or_not_at_all_when_redis_goes_away_between_commands(
    tmp_path: Path, prefix: str
) -> None:
    """Redis gone right after the first command carrying a dump was answered: whatever reached Redis is listed
    (the key, its index entry and its size together), and the dump the caller was given is listed once Redis is
    back; no dump key is left that no listing or pruning sees."""
    import redis

    with ValkeyProcess(valkey_binary()) as server, CutRelay(server.port) as relay:
        one = RedisDumpStore(relay.url, tmp_path / "one", prefix=prefix, max_age=None)
        admin = redis.Redis.from_url(server.url, decode_responses=True)
        first = one.write(make_dump(error_type="before"))  # this instance has written dumps before
        relay.cut_after(b"midway")
        during = one.write(make_dump(error_type="midway"))
        assert relay.was_cut.is_set()
        keys = {k.removeprefix(f"{prefix}dump:") for k in admin.scan_iter(f"{prefix}dump:*")}
        assert keys == set(admin.zrange(f"{prefix}dumps", 0, -1)) == set(admin.hkeys(f"{prefix}dump-sizes"))
        relay.heal()
        assert one._outage.wait_usable(10)  # noqa: SLF001 - the state store's probe heard Redis again
        after = one.write(make_dump(error_type="after"))
        assert {i.id for i in one.list().items} == {first, during, after}
        assert not list((tmp_path / "one").glob("*.json"))  # moved into Redis




def test_a_dump_redis_refuses_part_of_leaves_nothing_there(
    valkey_server: ValkeyProcess, tmp_path: Path, prefix: str
) -> None:
    """Redis answering one of a dump's writes with an error (here its size's: the key holds no hash): nothing
    of the dump stays in Redis, and it is kept in the local directory."""
    import redis

    admin = redis.Redis.from_url(valkey_server.url, decode_responses=True)
    admin.set(f"{prefix}dump-sizes", "not a hash")
    one = open_store(valkey_server, tmp_path / "one", prefix)
    kept = one.write(make_dump())
    assert kept is not None and (tmp_path / "one" / f"{kept}.json").is_file()
    assert not list(admin.scan_iter(f"{prefix}dump:*")) and admin.zcard(f"{prefix}dumps") == 0

def test_a_dump_given_its_conversation_keeps_its_size_when_redis_goes_away_between_commands(
    tmp_path: Path, prefix: str
) -> None:
    """Redis gone right after the new bytes of a dump were answered: the size the byte limit counts is theirs."""
    import redis

    with ValkeyProcess(valkey_binary()) as server, CutRelay(server.port) as relay:
        one = RedisDumpStore(relay.url, tmp_path / "one", prefix=prefix, max_age=None)
        admin = redis.Redis.from_url(server.url, decode_responses=True)
        dump_id = one.write(make_dump())
        assert dump_id is not None
        relay.cut_after(b"conv_" + b"F" * 22)
        one.set_conversation(dump_id, "conv_" + "F" * 22)
        assert relay.was_cut.is_set()
        assert admin.hget(f"{prefix}dump-sizes", dump_id) == str(admin.strlen(f"{prefix}dump:{dump_id}"))

def test_a_local_dump_whose_id_holds_an_unindexed_key_is_listed_and_pruned_once_moved(
    valkey_server: ValkeyProcess, tmp_path: Path, prefix: str
) -> None:
    """A move that stored a local dump's key and lost Redis before indexing it: the next move finds the id taken
    by the same bytes, indexes it (listed, sized, pruned by age and count) and only then removes the file."""
    import redis

    admin = redis.Redis.from_url(valkey_server.url, decode_responses=True)
    old = DumpStore(tmp_path / "one", max_age=None).write(make_dump(timestamp=datetime.now(UTC) - timedelta(days=9)))
    assert old is not None
    text = (tmp_path / "one" / f"{old}.json").read_text()
    admin.set(f"{prefix}dump:{old}", text)  # the key alone, as a move that lost Redis left it
    one = open_store(valkey_server, tmp_path / "one", prefix)
    after = one.write(make_dump())
    assert not list((tmp_path / "one").glob("*.json"))
    two = open_store(valkey_server, tmp_path / "two", prefix)  # another instance: only Redis can tell it
    assert {i.id for i in two.list().items} == {old, after}
    assert two.read_text(old) == text and admin.hget(f"{prefix}dump-sizes", old) == str(len(text.encode()))
    assert open_store(valkey_server, tmp_path / "two", prefix, max_age=timedelta(days=7)).prune() == 1
    assert admin.exists(f"{prefix}dump:{old}") == 0 and two.ids() == [after]


def test_a_local_dump_whose_id_holds_another_unindexed_dump_keeps_both(
    valkey_server: ValkeyProcess, tmp_path: Path, prefix: str
) -> None:
    """The id of a local dump taken in Redis by other bytes, not indexed: that dump is indexed, the local one
    is stored under a fresh id (its JSON naming it), and the file goes only then; count pruning sees both."""
    import redis

    admin = redis.Redis.from_url(valkey_server.url, decode_responses=True)
    start = datetime.now(UTC) - timedelta(hours=1)
    local_id = DumpStore(tmp_path / "one", max_age=None).write(make_dump(timestamp=start, error_type="timeout"))
    assert local_id is not None
    other = (tmp_path / "one" / f"{local_id}.json").read_text().replace('"timeout"', '"bad_request"')
    admin.set(f"{prefix}dump:{local_id}", other)
    one = open_store(valkey_server, tmp_path / "one", prefix)
    after = one.write(make_dump(error_type="server_error"))
    assert not list((tmp_path / "one").glob("*.json"))
    ids = {i.id for i in one.list().items}
    assert local_id in ids and after in ids and len(ids) == 3
    (fresh,) = ids - {local_id, after}
    assert one.read(fresh).error_type == "timeout" and one.read(local_id).error_type == "bad_request"
    assert f'"id": "{fresh}"' in one.read_text(fresh)
    assert admin.hlen(f"{prefix}dump-sizes") == 3
    assert open_store(valkey_server, tmp_path / "two", prefix, max_count=1).prune() == 2
    assert admin.zrange(f"{prefix}dumps", 0, -1) == [after] and admin.hkeys(f"{prefix}dump-sizes") == [after]


def test_a_local_file_that_is_no_dump_stays_and_the_write_that_met_it_returns_its_id(
    valkey_server: ValkeyProcess, tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not UTF-8, or not a dump where its id holds another dump in Redis: kept, one warning each."""
    import redis

    (tmp_path / "one").mkdir()
    bad, taken = (f"20261101T000000000000Z.timeout.openai_gpt-4o-mini.0badf11{n}" for n in (0, 1))
    (tmp_path / "one" / f"{bad}.json").write_bytes(b"\xff\xfe not UTF-8")
    (tmp_path / "one" / f"{taken}.json").write_text("{}")
    redis.Redis.from_url(valkey_server.url).set(f"{prefix}dump:{taken}", "{ }")
    one = open_store(valkey_server, tmp_path / "one", prefix)
    written = one.write(make_dump())
    assert written is not None and one.read(written).error_type == "rate_limit"
    for kept in (bad, taken):
        assert (tmp_path / "one" / f"{kept}.json").is_file()
        told = [r.getMessage() for r in caplog.records if kept in r.getMessage()]
        assert len(told) == 1 and str(tmp_path / "one") in told[0] and "DumpCorrupt" in told[0], told


@contextmanager
def unreadable_to_us(path: Path) -> Iterator[None]:
    """`path` made unreadable (mode 000) for the block. Root reads any file, so running as root the block runs
    with the effective uid of `nobody` (the saved uid stays root, which takes it back after); `path`'s directory
    is then open to everyone, for the store to write its dumps there."""
    path.chmod(0)
    if os.geteuid() != 0:
        yield
        return
    path.parent.chmod(0o777)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_local_dump_that_cannot_be_read_stays_told_once_and_redis_is_not_taken_for_away(
    valkey_server: ValkeyProcess, caplog: pytest.LogCaptureFixture, prefix: str
) -> None:
    """A local dump the store may not read (permission denied) is no failure of Redis: it stays where it is with
    one warning naming it, the breaker every store shares stays closed, and the dump being written goes to Redis."""
    import redis

    from hive_mcp.state_store import StateStore

    with tempfile.TemporaryDirectory() as top:  # not under pytest's own (0700) tree: `nobody` reaches it
        Path(top).chmod(0o755)
        directory = Path(top) / "one"
        directory.mkdir()
        one = open_store(valkey_server, directory, prefix)
        warm = one.write(make_dump(error_type="warm"))  # connected, and every import done, as ourselves
        locked = directory / "20261101T000000000000Z.timeout.openai_gpt-4o-mini.0badf120.json"
        locked.write_text(make_dump().model_dump_json())
        with unreadable_to_us(locked):
            written = one.write(make_dump(error_type="after"))
            again = one.write(make_dump(error_type="again"))  # meets the file again: told once all the same
        assert StateStore.shared(valkey_server.url).usable()
        assert locked.is_file()
        shared = redis.Redis.from_url(valkey_server.url)
        assert written is not None and again is not None
        assert shared.exists(f"{prefix}dump:{written}", f"{prefix}dump:{again}") == 2
        assert warm is not None and written not in {p.stem for p in directory.glob("*.json")}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not [w for w in warnings if "is unavailable (" in w], warnings
    told = [w for w in warnings if locked.stem in w]
    assert len(told) == 1 and str(directory) in told[0] and "PermissionError" in told[0], warnings
