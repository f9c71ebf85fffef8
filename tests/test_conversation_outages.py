"""Conversations while their store blinks: a real valkey-server frozen, a real SQLite file locked by another
connection (BEGIN EXCLUSIVE), as another process would hold it.

A conversation's writer turn is held by a short lease the call renews while it runs, and a turn whose end
could not be stored is given back once the store answers: a conversation id is continued again within
seconds of the store's return, never after the call's deadline plus a margin. A locked SQLite file is one
warning per outage, its waits end at the call's deadline, and reads go on under the lock. A call whose
answer could not be stored still answers, with one line naming the store instead of a conversation id.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from hive_mcp.conversations import ConversationBusy, StoreError
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.sqlite import waiting_until
from tests.clients import connect, mcp_server
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.conftest_valkey import Backend, started, valkey_binary
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess


@contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock (BEGIN EXCLUSIVE) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# The writer turn
# ---------------------------------------------------------------------------


async def test_a_turn_is_held_past_its_lease_while_the_call_runs(backend: Backend) -> None:
    """The lease is short and renewed while the body runs: a live call keeps its turn however long it takes."""
    first, second = backend.make(), backend.make()
    async with first.writer("conv_r", lease_s=0.3, timeout_s=1):
        await anyio.sleep(1.2)  # four leases long: the subject of the test, not a wait on a race
        with pytest.raises(ConversationBusy):
            async with second.writer("conv_r", lease_s=0.3, timeout_s=0):
                pass
    async with second.writer("conv_r", lease_s=0.3, timeout_s=0):
        pass  # given back at the end


async def test_a_turn_whose_end_met_a_frozen_redis_is_given_back_once_redis_answers() -> None:
    from hive_mcp.conversations.redis_store import RedisStore

    with ValkeyProcess(valkey_binary()) as server:
        first, second = RedisStore(server.url, prefix="blink:"), RedisStore(server.url, prefix="blink:")
        try:
            held = first.writer("conv_o", lease_s=60, timeout_s=1)
            await held.__aenter__()
            server.freeze()
            await held.__aexit__(None, None, None)  # the drop times out: the breaker opens
            server.thaw()
            await anyio.to_thread.run_sync(first._shared.wait_usable, 10.0)
            began = time.monotonic()
            async with second.writer("conv_o", lease_s=60, timeout_s=8):  # another instance, in effect
                pass
            assert time.monotonic() - began < 5.0
        finally:
            await first.aclose()
            await second.aclose()


async def test_a_turn_whose_end_met_a_locked_sqlite_file_is_given_back_once_it_is_free(
    sqlite_backend: Backend,
) -> None:
    first, second = sqlite_backend.make(busy_timeout_s=0.2), sqlite_backend.make(busy_timeout_s=0.2)
    await started(first)  # the file and its schema
    held = first.writer("conv_l", lease_s=60, timeout_s=1)
    await held.__aenter__()
    with locked(sqlite_backend.path):
        await held.__aexit__(None, None, None)  # the drop waits out the busy timeout and fails
    began = time.monotonic()
    async with second.writer("conv_l", lease_s=60, timeout_s=8):
        pass
    assert time.monotonic() - began < 5.0


# ---------------------------------------------------------------------------
# A locked SQLite file
# ---------------------------------------------------------------------------


async def test_a_locked_sqlite_file_is_one_warning_per_outage_and_reads_go_on(
    sqlite_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = sqlite_backend.make(busy_timeout_s=0.2)
    thread = await started(store)
    with caplog.at_level(logging.WARNING, logger="hive_mcp"):
        with locked(sqlite_backend.path):
            errors: list[StoreError] = []
            for _ in range(3):
                with pytest.raises(StoreError) as info:
                    await started(store)
                errors.append(info.value)
                assert (await store.get(thread.id)).thread.id == thread.id  # reads do not wait for the lock
                assert len((await store.list()).items) == 1
        assert all(e.told and str(sqlite_backend.path) in str(e) for e in errors)  # told by the one warning
        await started(store)
        await started(store)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2, lines
    assert "unavailable" in lines[0] and str(sqlite_backend.path) in lines[0] and "not stored" in lines[0]
    assert "again" in lines[1] and str(sqlite_backend.path) in lines[1]


async def test_a_locked_sqlite_file_is_waited_for_until_the_deadline_at_most(sqlite_backend: Backend) -> None:
    store = sqlite_backend.make()  # the busy timeout: 5 s
    await started(store)
    with locked(sqlite_backend.path):
        began = time.monotonic()
        with waiting_until(began + 0.5), pytest.raises(StoreError, match="locked"):
            await started(store)
        assert time.monotonic() - began < 1.5


# ---------------------------------------------------------------------------
# A call whose answer could not be stored
# ---------------------------------------------------------------------------


async def test_a_continued_call_whose_answer_cannot_be_stored_says_so_and_ends_by_its_deadline(
    store: DumpStore, tmp_path: Path
) -> None:
    """The file is locked while the model answers the continued call: the answer comes back (it was paid for)
    with one line naming the store and no conversation_id, within the call's 2 s deadline rather than the
    5 s busy timeout; once the file is free, the conversation is continued at once (its turn was given back)."""
    path = tmp_path / "hive" / "hive-mcp.sqlite3"
    locks: list[sqlite3.Connection] = []

    def reply_for(request: RecordedRequest) -> Reply | None:
        if "again" in json.dumps(request.messages) and not locks:
            lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            lock.execute("BEGIN EXCLUSIVE")
            locks.append(lock)
        return None

    from hive_mcp.conversations.sqlite_store import SQLiteStore

    conv = SQLiteStore(path)
    with Upstream(Reply.text("fine"), reply_for=reply_for) as up:
        provider = LiteLLMProvider(
            model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=up.base_url, retry=FAST_RETRY, dump_store=store
        )
        server = mcp_server(provider, store, conversations=conv, limits=Limits(queue_timeout_s=3))
        async with connect(server, "auto") as c:
            first = await c.call_tool("complete", {"prompt": "hi"})
            cid = first.structured_content["conversation_id"]
            began = time.monotonic()
            again = await c.call_tool("complete", {"prompt": "again", "conversation_id": cid, "deadline_s": 2})
            took = time.monotonic() - began
            locks[0].close()
            third = await c.call_tool("complete", {"prompt": "third", "conversation_id": cid})
    await conv.aclose()
    assert not again.is_error and again.structured_content["content"] == "fine"
    assert "conversation_id" not in again.structured_content
    line = again.structured_content["not_stored"]
    assert str(path) in line and "\n" not in line and "locked" in line
    assert took < 3.0, took
    assert not third.is_error, third.content
    assert third.structured_content["conversation_id"] == cid


async def test_a_continued_call_whose_redis_froze_while_the_model_answered_says_so_and_the_id_goes_on(
    store: DumpStore,
) -> None:
    """Redis freezes while the model answers a continued call: the answer comes back with one line naming the
    store (its URL, no password) and no conversation_id; once Redis answers, the id is continued at once."""
    from hive_mcp.conversations.redis_store import RedisStore

    with ValkeyProcess(valkey_binary(), extra=("--requirepass", "hunter2")) as valkey:
        url = f"redis://:hunter2@127.0.0.1:{valkey.port}/0"

        def reply_for(request: RecordedRequest) -> Reply | None:
            if "again" in json.dumps(request.messages):
                valkey.freeze()
            return None

        conv = RedisStore(url, prefix="frozen:")
        with Upstream(Reply.text("fine"), reply_for=reply_for) as up:
            provider = LiteLLMProvider(
                model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=up.base_url, retry=FAST_RETRY,
                dump_store=store,
            )  # fmt: skip
            server = mcp_server(provider, store, conversations=conv, limits=Limits(queue_timeout_s=3))
            async with connect(server, "auto") as c:
                first = await c.call_tool("complete", {"prompt": "hi"})
                cid = first.structured_content["conversation_id"]
                again = await c.call_tool("complete", {"prompt": "again", "conversation_id": cid})
                valkey.thaw()
                await anyio.to_thread.run_sync(conv._shared.wait_usable, 10.0)
                third = await c.call_tool("complete", {"prompt": "third", "conversation_id": cid})
        await conv.aclose()
    assert not third.is_error, third.content  # the turn the frozen Redis kept was given back
    assert third.structured_content["conversation_id"] == cid
    assert not again.is_error and "conversation_id" not in again.structured_content
    line = again.structured_content["not_stored"]
    assert f"redis://127.0.0.1:{valkey.port}/0" in line and "hunter2" not in line and "\n" not in line
