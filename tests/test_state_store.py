"""The state store: one per Redis per process, its pools shared by every store, one breaker for all of them.

Against a real valkey-server: the ledger, the dumps, the bus and the conversations of one process ask Redis
through one `StateStore` (one client, one pool, on the state loop); a frozen Valkey (SIGSTOP) costs one
timeout, after which no store waits on it; one warning when it goes, one when the probe hears it back.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
import redis

from hive_mcp.conversations import StoreError
from hive_mcp.conversations.redis_store import RedisStore
from hive_mcp.dumps.redis_store import RedisDumpStore
from hive_mcp.mcp.bus import RedisSubscriptionBus
from hive_mcp.spend.redis_backend import RedisBackend
from hive_mcp.state_store import TIMEOUT_S, StateStore
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary


def ledger_since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


async def test_every_store_of_a_process_shares_one_state_store(
    valkey_server: ValkeyProcess, tmp_path: Path
) -> None:
    url = valkey_server.url
    ledger, dumps, bus = RedisBackend(url), RedisDumpStore(url, tmp_path / "dumps"), RedisSubscriptionBus(url)
    conversations = RedisStore(url)
    state = StateStore.shared(url)
    assert ledger.shared is state and dumps._outage is state and bus._outage is state  # noqa: SLF001
    assert ledger._r is dumps._redis is conversations._r is state.aclient()  # noqa: SLF001 - one pool
    async with bus.running():
        assert bus._client is state.aclient()  # noqa: SLF001
    await conversations.aclose()


def test_a_frozen_redis_costs_one_timeout_then_nobody_waits_on_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hive_mcp.state")
    with ValkeyProcess(valkey_binary()) as valkey:
        ledger = RedisBackend(valkey.url)
        dumps = RedisDumpStore(valkey.url, tmp_path / "dumps")
        assert ledger.calls(ledger_since()) == []
        valkey.freeze()
        try:
            began = time.monotonic()
            with pytest.raises(OSError):
                ledger.calls(ledger_since())
            waited = time.monotonic() - began
            assert TIMEOUT_S * 0.9 <= waited <= TIMEOUT_S * 2  # one timeout, no retry of it
            began = time.monotonic()
            for _ in range(20):  # every store, every call: refused at once while the breaker is open
                with pytest.raises(OSError):
                    ledger.calls(ledger_since())
                assert dumps.list().items == []
            assert time.monotonic() - began < TIMEOUT_S
        finally:
            valkey.thaw()
        assert ledger.shared.wait_usable(5 * TIMEOUT_S)  # the probe heard it
        assert ledger.calls(ledger_since()) == []
        assert redis.Redis.from_url(valkey.url).ping()
    down = [r for r in caplog.records if "is unavailable (" in r.getMessage()]
    up = [r for r in caplog.records if "every store uses it again" in r.getMessage()]
    assert len(down) == 1 and len(up) == 1, caplog.text
    assert "TimeoutError" in down[0].getMessage()


async def test_conversations_fail_at_once_while_the_breaker_is_open() -> None:
    with ValkeyProcess(valkey_binary()) as valkey:
        store = RedisStore(valkey.url, prefix="breaker:")
        valkey.stop()
        with pytest.raises(StoreError) as first:
            await store.list()
        assert first.value.told  # the state store warned once; the call path does not warn again
        with anyio.fail_after(TIMEOUT_S):
            for _ in range(20):
                with pytest.raises(StoreError):
                    await store.list()
        await store.aclose()


def test_a_forked_child_asks_redis_on_a_loop_and_pool_of_its_own(
    valkey_server: ValkeyProcess, tmp_path: Path
) -> None:
    """The state loop is a thread, which a fork does not copy: the child starts its own, and the stores the
    parent made work in it (without, every call of the child would wait forever on a loop nobody runs)."""
    import multiprocessing

    ledger = RedisBackend(valkey_server.url, prefix="fork:")
    dumps = RedisDumpStore(valkey_server.url, tmp_path / "dumps", prefix="fork:")
    assert ledger.calls(ledger_since()) == [] and dumps.list().items == []  # the parent's loop and pool in use
    child_end, parent_end = multiprocessing.Pipe()

    def child() -> None:
        child_end.send((len(ledger.calls(ledger_since())), len(dumps.list().items)))

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    try:
        assert parent_end.poll(10 * TIMEOUT_S), "the forked child's call did not return"
        assert parent_end.recv() == (0, 0)
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    assert ledger.calls(ledger_since()) == []  # the parent's pool still serves it


async def test_every_connection_a_process_opens_is_named_after_it(tmp_path: Path) -> None:
    """An operator's `CLIENT LIST` tells which hive-mcp process holds which connection: every connection of the
    process's pool, commands and the bus's subscriber alike, is named `hive-mcp:<pid>`; a `client_name` the
    state URL sets is the operator's own choice and wins."""
    import os

    with ValkeyProcess(valkey_binary()) as valkey:
        watch = redis.Redis.from_url(valkey.url, decode_responses=True)
        conversations, bus = RedisStore(valkey.url), RedisSubscriptionBus(valkey.url)
        try:
            async with bus.running():
                with anyio.fail_after(10):
                    await bus.connected.wait()
                assert await conversations.count() == 0
                clients = [c for c in watch.client_list() if int(c["id"]) != watch.client_id()]
            assert {c["name"] for c in clients} == {f"hive-mcp:{os.getpid()}"}, clients
            assert any(int(c["sub"]) for c in clients)  # the bus's subscriber among them
        finally:
            await conversations.aclose()
        named = RedisStore(f"{valkey.url}?client_name=billing-edge")
        try:
            assert await named.count() == 0
            assert "billing-edge" in {c["name"] for c in watch.client_list()}
        finally:
            await named.aclose()
