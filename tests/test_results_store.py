"""The store of big answers, in SQLite and in a real valkey-server: each result belongs to its caller (another
caller's id reads as an unknown one; `None`, admins and the stdio user, sees every one), lives for its TTL by
the store's clock, and is listed newest first for its owner; and the splitting of a text into parts that each
fit the inline limit by a real token counter and join back exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hive_mcp.results import ResultStore, ResultStoreError, UnknownResult, split_parts
from hive_mcp.results.redis_store import RedisResults
from hive_mcp.results.sqlite_store import SQLiteResults
from hive_mcp.state_store import StateStore
from harness.valkey import ValkeyProcess
from tests.conftest import Clock


@pytest.fixture(params=["sqlite", "redis"])
def results(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[ResultStore]:
    if request.param == "sqlite":
        yield SQLiteResults(tmp_path / "hive-mcp.sqlite3", ttl_s=60, clock=clock)
        return
    server: ValkeyProcess = request.getfixturevalue("valkey_server")
    yield RedisResults(server.url, ttl_s=60, clock=clock, prefix=f"test-{uuid.uuid4().hex[:8]}:")


async def test_a_result_is_its_owners_alone(results: ResultStore) -> None:
    mine = await results.put("alice", "one two three", [0, 4, 8], tokens=3)
    kept = await results.get(mine.id, "alice")
    assert (kept.text, kept.bounds, kept.owner, kept.tokens) == ("one two three", [0, 4, 8], "alice", 3)
    assert [kept.part(n) for n in (1, 2, 3)] == ["one ", "two ", "three"]
    with pytest.raises(UnknownResult) as other:
        await results.get(mine.id, "bob")
    with pytest.raises(UnknownResult) as unknown:
        await results.get("0" * 32, "bob")
    assert str(other.value).replace(mine.id, "ID") == str(unknown.value).replace("0" * 32, "ID")
    assert (await results.get(mine.id, None)).text == "one two three"  # an admin's view


async def test_results_are_listed_newest_first_for_their_owner(results: ResultStore, clock: Clock) -> None:
    ids = []
    for i in range(3):
        clock.now += 1
        ids.append((await results.put("alice", f"answer {i}", [0], tokens=2)).id)
    bobs = (await results.put("bob", "his", [0], tokens=1)).id
    assert [s.id for s in await results.list("alice", 10)] == ids[::-1]
    assert [s.id for s in await results.list("alice", 2)] == ids[:0:-1]
    assert [s.id for s in await results.list("bob", 10)] == [bobs]
    assert {s.id for s in await results.list(None, 10)} == {*ids, bobs}
    [summary] = await results.list("bob", 10)
    assert (summary.size, summary.parts) == (3, 1)


async def test_a_result_expires_after_its_ttl(results: ResultStore, clock: Clock) -> None:
    kept = await results.put("alice", "soon gone", [0], tokens=2)
    clock.now += 59
    assert (await results.get(kept.id, "alice")).text == "soon gone"
    clock.now += 2
    with pytest.raises(UnknownResult):
        await results.get(kept.id, "alice")
    assert await results.list("alice", 10) == []


def test_parts_fit_the_limit_and_join_back_exactly() -> None:
    from hive_mcp.provider.failure import count_text

    text = "".join(f"Para {i}: {'lorem ipsum dolor ' * (i % 7)}sit amet, émoji 🦊 {i}.\n" for i in range(400))
    counted = lambda t: count_text("gpt-4o-mini", t) or 0  # noqa: E731 - litellm's real counter
    bounds = split_parts(text, 200, counted)
    parts = [text[a:b] for a, b in zip(bounds, [*bounds[1:], len(text)])]
    assert bounds[0] == 0 and "".join(parts) == text and len(parts) > 5
    assert all(0 < counted(p) <= 200 for p in parts)
    assert all(p.endswith(("\n", " ")) for p in parts[:-1])  # cut where a word ends
    assert split_parts("short", 200, counted) == [0]


async def test_a_command_redis_answers_with_an_error_leaves_every_store_on_redis(valkey_server: ValkeyProcess) -> None:
    """A reply that is an error (WRONGTYPE: the result's key holds a string) says nothing of Redis being away: the
    read fails, and no store stops using Redis for it."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    with redis.Redis.from_url(valkey_server.url) as r:
        r.set(f"{prefix}result:{'0' * 32}", "not a hash")
    results = RedisResults(valkey_server.url, ttl_s=60, prefix=prefix)
    with pytest.raises(ResultStoreError):
        await results.get("0" * 32, "alice")
    assert StateStore.shared(valkey_server.url).usable()
