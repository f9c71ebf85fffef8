"""The conversation store, one suite over both backends (SQLite on a real file, Redis on a real valkey-server):
creating, continuing and forking; a failed append; ids, expiry and caps; owners and listings; and what each
backend adds (a restart, private files, a full disk, an outage).

Each test names one guarantee of hive_mcp.conversations and fails when it is
removed. Time is the store's injectable clock, except where Redis's own expiry
is the subject (then a short real PEXPIRE, awaited on a condition with a bound).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from typing import Any

import anyio
import pydantic
import pytest

from hive_mcp.conversations import (
    ConversationConflict, ConversationFull, ConversationLimits, ExpiredConversation, MalformedConversationId,
    StoreError, UnknownConversation, UnknownMessage, new_id,
)  # fmt: skip
from tests.conftest_valkey import (
    SYSTEM, Backend, answer, continued, started, stored_keys, turn, user, valkey_binary, wait_for,
    reads_expired,
)  # fmt: skip
from hive_mcp.conversations.sqlite_store import MIGRATIONS
from harness.valkey import ValkeyProcess

# ---------------------------------------------------------------------------
# Create, continue, fork
# ---------------------------------------------------------------------------


async def test_continue_replays_the_thread_in_order_and_records_each_turn(backend: Backend) -> None:
    store = backend.make()
    first = await started(store, model="model-a")
    second = await continued(store, first, "why", model="model-b")
    view = await store.get(first.id)
    assert view.chat_messages() == [SYSTEM, user("hi"), answer("hello"), user("why"), answer("WHY")]
    assert [t.model for t in view.turns] == ["model-a", "model-b"]
    assert view.turns[1].usage.input_tokens == 10 and view.turns[1].owner == "local"
    assert view.thread == second
    assert (second.turns, second.models) == (2, ["model-a", "model-b"])
    assert second.cost_usd == pytest.approx(0.002)
    assert second.id.startswith("conv_") and len(second.id) == 27  # 16 random bytes, URL-safe base64


async def test_roles_tool_calls_and_parts_come_back_structured(backend: Backend) -> None:
    store = backend.make()
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look it up"}]},
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning_content": "need a lookup"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"answer": 42}'},
        {"role": "assistant", "content": "42"},
    ]
    thread = await store.create(owner="local", messages=messages, turn=turn())
    got = (await store.get(thread.id)).chat_messages()
    assert got == [messages[0], {k: v for k, v in messages[1].items() if v is not None}, *messages[2:]]


async def test_fork_points_at_the_source_message_and_leaves_the_source_unchanged(backend: Backend) -> None:
    store = backend.make()
    source = await continued(store, await started(store), "why")
    before = await store.get(source.id)
    fork = await store.fork(source.id, messages=[user("and then"), answer("THEN")], turn=turn("model-c"))
    assert fork.id != source.id and fork.forked_from == source.tip and fork.forked_from_thread == source.id
    forked = await store.get(fork.id)
    # Nothing copied: the fork's history is the source's own messages, then its new ones.
    assert [m.id for m in forked.messages[:5]] == [m.id for m in before.messages]
    assert forked.chat_messages()[5:] == [user("and then"), answer("THEN")]
    assert (fork.turns, fork.models) == (3, ["openai/gpt-4o-mini", "model-c"])
    after = await store.get(source.id)
    assert after.messages == before.messages and after.thread.tip == source.tip


async def test_fork_at_an_earlier_message(backend: Backend) -> None:
    store = backend.make()
    source = await continued(store, await started(store, model="model-a"), "why", model="model-b")
    view = await store.get(source.id)
    fork = await store.fork(source.id, at=view.messages[2].id)
    assert (await store.get(fork.id)).chat_messages() == [SYSTEM, user("hi"), answer("hello")]
    assert (fork.turns, fork.models) == (1, ["model-a"])
    with pytest.raises(UnknownMessage, match="at: message nope"):
        await store.fork(source.id, at="nope")


async def test_unpriced_turns_are_counted_beside_the_cost_through_continue_and_fork(backend: Backend) -> None:
    store = backend.make()
    first = await store.create(owner="local", messages=[user("hi"), answer("hello")], turn=turn(cost=None))
    assert (first.cost_usd, first.unpriced_turns) == (0.0, 1)
    second = await store.append(first.id, [user("why"), answer("WHY")], turn(cost=0.25), expected_tip=first.tip)
    assert (second.cost_usd, second.unpriced_turns) == (0.25, 1)
    assert (await store.thread(second.id)).unpriced_turns == 1
    at_tip = await store.fork(second.id, messages=[user("so"), answer("SO")], turn=turn(cost=None))
    assert (at_tip.cost_usd, at_tip.unpriced_turns) == (0.25, 2)
    early = await store.fork(second.id, at=(await store.get(second.id)).messages[1].id)
    assert (early.turns, early.cost_usd, early.unpriced_turns) == (1, 0.0, 1)
    listed = {t.id: t.unpriced_turns for t in (await store.list()).items}
    assert listed == {first.id: 1, at_tip.id: 2, early.id: 1}


async def test_forks_run_in_parallel_from_one_message(backend: Backend) -> None:
    store = backend.make()
    source = await started(store)
    forks: dict[str, Any] = {}

    async def ask(model: str) -> None:
        forks[model] = await store.fork(source.id, messages=[user("second opinion?")], turn=turn(model))

    async with anyio.create_task_group() as tg:
        for model in ("model-a", "model-b", "model-c"):
            tg.start_soon(ask, model)
    assert len({f.id for f in forks.values()}) == 3
    for model, fork in forks.items():
        view = await store.get(fork.id)
        assert view.chat_messages() == [SYSTEM, user("hi"), answer("hello"), user("second opinion?")]
        assert view.turns[-1].model == model
    assert (await store.thread(source.id)).tip == source.tip


async def test_deleting_a_source_keeps_its_forks_history(backend: Backend) -> None:
    store = backend.make()
    source = await started(store)
    fork = await store.fork(source.id, messages=[user("more"), answer("MORE")], turn=turn())
    await continued(store, await store.thread(source.id), "source only")
    await store.delete(source.id)
    with pytest.raises(UnknownConversation):
        await store.get(source.id)
    history = [SYSTEM, user("hi"), answer("hello"), user("more"), answer("MORE")]
    assert (await store.get(fork.id)).chat_messages() == history


async def test_records_are_freed_when_no_thread_reaches_them(backend: Backend) -> None:
    store = backend.make()
    source = await started(store)
    fork = await store.fork(source.id, messages=[user("fork only")], turn=turn())
    await store.delete(fork.id)
    if backend.kind == "sqlite":  # the fork's own message and turn go at once; Redis frees a lineage as a whole
        assert await stored_keys(backend) == 3 + 1
    assert len((await store.get(source.id)).messages) == 3
    await store.delete(source.id)
    assert await stored_keys(backend) == 0


# ---------------------------------------------------------------------------
# A failed append
# ---------------------------------------------------------------------------


async def test_a_failed_append_leaves_the_thread_as_it_was(backend: Backend) -> None:
    store = backend.make(limits=ConversationLimits(max_turns=3))
    thread = await started(store)
    before = await store.get(thread.id)
    with pytest.raises(pydantic.ValidationError):
        await store.append(thread.id, [user("ok"), {"role": "robot", "content": "x"}], turn(), expected_tip=thread.tip)
    with pytest.raises(ConversationConflict):
        await store.append(thread.id, [user("stale")], turn(), expected_tip="not-the-tip")
    assert await store.get(thread.id) == before


# ---------------------------------------------------------------------------
# Ids, expiry, caps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["abc", "conv_" + "a" * 21, "conv_" + "a/" * 11, 42, None, "CONV_" + "a" * 22])
async def test_malformed_ids_are_refused_before_any_lookup(backend: Backend, bad: Any) -> None:
    store = backend.make()
    for op in (store.get(bad), store.thread(bad), store.fork(bad), store.delete(bad)):
        with pytest.raises(MalformedConversationId) as info:
            await op
        assert "\n" not in str(info.value) and "malformed" in str(info.value)


async def test_unknown_and_deleted_ids_are_unknown(backend: Backend) -> None:
    store = backend.make()
    cid = new_id()
    with pytest.raises(UnknownConversation, match=f"unknown conversation {cid}"):
        await store.get(cid)
    thread = await started(store)
    await store.delete(thread.id)
    for op in (store.get(thread.id), continued(store, thread, "x")):
        with pytest.raises(UnknownConversation):
            await op


async def test_unused_conversations_expire_and_are_told_from_unknown(backend: Backend) -> None:
    if backend.kind == "sqlite":
        store = backend.make(limits=ConversationLimits(ttl_s=60))
        kept, dropped = await started(store), await started(store)
        backend.clock.advance(50)
        kept = await continued(store, kept, "still here")  # a use renews the TTL
        backend.clock.advance(50)
        assert (await store.get(kept.id)).thread.turns == 2
        assert await store.sweep() == 1
    else:
        store = backend.make(limits=ConversationLimits(ttl_s=0.3), real_clock=True)
        dropped = await started(store)

        async def all_gone() -> bool:  # Redis's own expiry takes the thread, its messages and turns
            return await stored_keys(backend, "conv:*") == 0 and await stored_keys(backend, "lin:*") == 0

        await wait_for(all_gone)
    with pytest.raises(ExpiredConversation, match=f"{dropped.id} expired") as info:
        await store.get(dropped.id)
    assert info.value.reason == "expired"
    with pytest.raises(ExpiredConversation):
        await continued(store, dropped, "too late")
    assert dropped.id not in [t.id for t in (await store.list()).items]


async def test_the_oldest_used_conversation_is_evicted_at_the_cap(backend: Backend) -> None:
    store = backend.make(limits=ConversationLimits(max_conversations=3))
    a, b, c = await started(store), await started(store), await started(store)
    await continued(store, a, "keep a")  # now b is the oldest used
    d = await started(store)
    with pytest.raises(ExpiredConversation, match="evicted") as info:
        await store.get(b.id)
    assert info.value.reason == "evicted"
    assert {t.id for t in (await store.list()).items} == {a.id, c.id, d.id}


async def test_turn_and_byte_caps_refuse_and_store_nothing(backend: Backend) -> None:
    store = backend.make(limits=ConversationLimits(max_turns=2, max_bytes=2000))
    thread = await continued(store, await started(store), "second")
    with pytest.raises(ConversationFull, match="max_turns 2") as info:
        await continued(store, thread, "third")
    assert info.value.limit == "max_turns"
    small = await started(store)
    with pytest.raises(ConversationFull, match="max_bytes 2000"):
        await continued(store, small, "x" * 2000)
    assert (await store.thread(thread.id)) == thread and (await store.thread(small.id)).tip == small.tip


async def test_redaction_applies_before_storing(backend: Backend) -> None:
    secret = "sk-live-DONOTSTORE"
    store = backend.make(redact=lambda text: text.replace(secret, "[REDACTED]"))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": f'{{"key": "{secret}"}}'}}
    thread = await store.create(
        owner="local",
        messages=[user(f"my key is {secret}"), {"role": "assistant", "tool_calls": [call]}],
        turn=turn(),
    )
    got = (await store.get(thread.id)).chat_messages()
    assert got[0]["content"] == "my key is [REDACTED]" and secret not in str(got)
    assert got[1]["tool_calls"][0]["id"] == "c1"
    if backend.kind == "sqlite":
        await store.aclose()
        raw = b"".join(p.read_bytes() for p in backend.path.parent.iterdir())
    else:
        import redis.asyncio as aioredis

        assert backend.server is not None
        r = aioredis.from_url(backend.server.url)
        raw = b"".join([str(await r.dump(k)).encode() async for k in r.scan_iter(f"{backend.prefix}*")])
        await r.aclose()
        assert raw
    assert secret.encode() not in raw


# ---------------------------------------------------------------------------
# Owners and listings
# ---------------------------------------------------------------------------


async def test_another_owner_sees_not_found_and_no_listing(backend: Backend) -> None:
    store = backend.make()
    mine = await started(store, owner="alice")
    for op in (
        store.get(mine.id, owner="bob"),
        continued(store, mine, "hijack", owner="bob"),
        store.fork(mine.id, owner="bob"),
        store.delete(mine.id, owner="bob"),
    ):
        with pytest.raises(UnknownConversation):
            await op
    assert (await store.list(owner="bob")).items == []
    assert [t.id for t in (await store.list(owner="alice")).items] == [mine.id]
    assert [t.id for t in (await store.list()).items] == [mine.id]  # the operator's view
    assert (await store.thread(mine.id, owner="alice")).turns == 1


async def test_another_owners_expired_or_evicted_conversation_reads_as_unknown(backend: Backend) -> None:
    real = backend.kind == "redis"  # Redis expires a thread itself: a short real TTL there
    store = backend.make(limits=ConversationLimits(max_conversations=1, ttl_s=0.5 if real else 60), real_clock=real)
    evicted = await started(store, owner="alice")
    expired = await started(store, owner="alice")  # the cap of one evicts the first
    if real:
        await wait_for(lambda: reads_expired(store, expired.id))
    else:
        backend.clock.advance(61)  # past the TTL, not yet swept: expired on sight
    for thread, reason in ((evicted, "evicted"), (expired, "expired")):
        with pytest.raises(ExpiredConversation) as info:
            await store.get(thread.id, owner="alice")
        assert info.value.reason == reason
        for op in (
            lambda: store.get(thread.id, owner="bob"), lambda: store.thread(thread.id, owner="bob"),
            lambda: continued(store, thread, "hijack", owner="bob"), lambda: store.fork(thread.id, owner="bob"),
        ):  # fmt: skip
            with pytest.raises(UnknownConversation) as unknown:
                await op()
            assert str(unknown.value) == str(UnknownConversation(thread.id))


async def test_listing_is_newest_used_first_with_cursor_and_filters(backend: Backend) -> None:
    store = backend.make()
    threads = [await started(store, model=f"model-{'ab'[i % 2]}") for i in range(5)]
    await continued(store, threads[1], "touch", model="model-c")  # most recently used now
    expected = [threads[1].id, threads[4].id, threads[3].id, threads[2].id, threads[0].id]
    seen, cursor = [], None
    while True:
        page = await store.list(limit=2, cursor=cursor)
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert [t.id for t in (await store.list(model="model-a")).items] == [threads[4].id, threads[2].id, threads[0].id]
    assert [t.id for t in (await store.list(model="model-c")).items] == [threads[1].id]
    since = (await store.thread(threads[3].id)).last_used
    assert [t.id for t in (await store.list(since=since)).items] == expected[:3]
    with pytest.raises(ValueError, match="cursor"):
        await store.list(cursor="garbage")


# ---------------------------------------------------------------------------
# Backend specifics: restart, files, outages
# ---------------------------------------------------------------------------


async def test_sqlite_survives_a_restart_in_private_files(sqlite_backend: Backend) -> None:
    backend = sqlite_backend
    store = backend.make()
    thread = await continued(store, await started(store), "before restart")
    await store.aclose()
    again = backend.make()
    view = await again.get(thread.id)
    assert view.thread == thread and view.chat_messages()[-1] == answer("BEFORE RESTART")
    assert stat.S_IMODE(os.stat(backend.path.parent).st_mode) == 0o700
    for p in backend.path.parent.iterdir():
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    with sqlite3.connect(backend.path) as conn:
        assert conn.execute("SELECT name FROM _migrations").fetchall() == [(name,) for name, _ in MIGRATIONS]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_file_from_before_unpriced_turns_were_counted_has_them_counted_on_opening(
    sqlite_backend: Backend,
) -> None:
    store = sqlite_backend.make()
    source = await store.create(owner="local", messages=[user("hi"), answer("hello")], turn=turn(cost=None))
    source = await store.append(source.id, [user("why"), answer("WHY")], turn(cost=0.5), expected_tip=source.tip)
    fork = await store.fork(source.id, messages=[user("so"), answer("SO")], turn=turn(cost=None))
    await store.aclose()
    with sqlite3.connect(sqlite_backend.path) as conn:  # the file as the migrations before the counter left it
        conn.execute("ALTER TABLE threads DROP COLUMN unpriced_turns")
        conn.execute("DELETE FROM _migrations WHERE name = 'm004_unpriced_turns'")
    again = sqlite_backend.make()
    assert [(await again.thread(t.id)).unpriced_turns for t in (source, fork)] == [1, 2]


async def test_a_redis_thread_from_before_unpriced_turns_were_counted_reads_them_counted(
    tmp_path: Any, valkey_server: ValkeyProcess
) -> None:
    """A thread stored before the counter existed has no `unpriced_turns` in its record: it reads the count of
    its chain's turns that had no price, as the SQLite store's migration counts them, never 0 for not knowing;
    and its next turn adds to that count."""
    import redis.asyncio as aioredis

    backend = Backend("redis", tmp_path / "unused", valkey_server)
    store = backend.make()
    source = await store.create(owner="local", messages=[user("hi"), answer("hello")], turn=turn(cost=None))
    source = await store.append(source.id, [user("why"), answer("WHY")], turn(cost=0.5), expected_tip=source.tip)
    fork = await store.fork(source.id, messages=[user("so"), answer("SO")], turn=turn(cost=None))
    r = aioredis.from_url(valkey_server.url, decode_responses=True)
    try:  # each record as the store wrote it before the counter
        for thread in (source, fork):
            key = f"{backend.prefix}conv:{thread.id}"
            data = json.loads(await r.hget(key, "data"))
            del data["unpriced_turns"]
            await r.hset(key, "data", json.dumps(data))
    finally:
        await r.aclose()
    assert [(await store.thread(t.id)).unpriced_turns for t in (source, fork)] == [1, 2]
    assert [(await store.get(t.id)).thread.unpriced_turns for t in (source, fork)] == [1, 2]
    assert {t.id: t.unpriced_turns for t in (await store.list()).items} == {source.id: 1, fork.id: 2}
    later = await store.append(source.id, [user("then"), answer("THEN")], turn(cost=None), expected_tip=source.tip)
    assert (later.unpriced_turns, (await store.thread(source.id)).unpriced_turns) == (2, 2)


async def test_sqlite_disk_full_is_one_line_leaves_the_thread_and_recovers(sqlite_backend: Backend) -> None:
    backend = sqlite_backend
    store = backend.make()
    thread = await started(store)
    before = await store.get(thread.id)
    conn = store._db._conn  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL, as on a full disk
    with pytest.raises(StoreError, match="database or disk is full") as info:
        await continued(store, thread, "x" * 50_000)
    assert str(backend.path) in str(info.value) and "\n" not in str(info.value)
    assert await store.get(thread.id) == before
    assert (await continued(store, thread, "x" * 50_000)).turns == 2  # a fresh connection, no cap


async def test_sqlite_failure_is_one_line_naming_the_file(sqlite_backend: Backend) -> None:
    backend = sqlite_backend
    backend.path.parent.mkdir(mode=0o700)
    backend.path.write_bytes(b"this is not a database" * 100)
    store = backend.make()
    with pytest.raises(StoreError) as info:
        await started(store)
    line = str(info.value)
    assert str(backend.path) in line and "\n" not in line and "Traceback" not in line


async def test_redis_outage_is_one_store_error_and_recovers() -> None:
    from hive_mcp.conversations.redis_store import RedisStore

    with ValkeyProcess(valkey_binary(), extra=("--requirepass", "hunter2")) as server:
        store = RedisStore(f"redis://:hunter2@127.0.0.1:{server.port}/0", prefix="outage:")
        thread = await started(store)
        server.stop()
        for op in (started(store), store.get(thread.id), store.list()):
            with pytest.raises(StoreError) as info:
                await op
            line = str(info.value)
            assert f"redis://127.0.0.1:{server.port}/0" in line
            assert "\n" not in line and "hunter2" not in line and "Traceback" not in line
        server.start()

        async def back() -> bool:
            try:
                await started(store)
            except StoreError:
                return False
            return True

        await wait_for(back)
        assert len((await store.list()).items) == 1  # --save '': the restarted server starts empty
        await store.aclose()
