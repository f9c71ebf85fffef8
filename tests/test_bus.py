"""The cross-process subscription bus (mcp/bus.py) on a real valkey-server: one channel per database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from hive_mcp.mcp.bus import RedisSubscriptionBus, channel_for, running
from hive_mcp.mcp.server import TASK_CANCEL
from hive_mcp.tasks import TaskEngine
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from harness.valkey import ValkeyProcess
from tests.clients import mcp_server


def test_the_channel_names_the_database() -> None:
    assert channel_for("redis://127.0.0.1:6379/0") == channel_for("redis://h") == "hive-mcp:events:db0"
    assert channel_for("rediss://:pw@h:6380/3") == "hive-mcp:events:db3"
    assert channel_for("unix:///run/valkey.sock?db=2") == "hive-mcp:events:db2"


class Heard:
    def __init__(self) -> None:
        self.uris: list[str] = []
        self.changed = anyio.Event()

    def __call__(self, event: ServerEvent) -> None:
        assert isinstance(event, ResourceUpdated)
        self.uris.append(event.uri)
        self.changed.set()
        self.changed = anyio.Event()

    async def until(self, uri: str) -> None:
        with anyio.fail_after(10):
            while uri not in self.uris:
                await self.changed.wait()


async def test_a_change_reaches_processes_on_its_database_and_no_other(valkey_server: ValkeyProcess) -> None:
    base = valkey_server.url.rsplit("/", 1)[0]
    sender, peer = RedisSubscriptionBus(f"{base}/5"), RedisSubscriptionBus(f"{base}/5")
    other_sender, other = RedisSubscriptionBus(f"{base}/6"), RedisSubscriptionBus(f"{base}/6")
    heard_peer, heard_other = Heard(), Heard()
    peer.subscribe(heard_peer)
    other.subscribe(heard_other)
    async with AsyncExitStack() as stack:
        for bus in (sender, peer, other_sender, other):
            await stack.enter_async_context(bus.running())
        with anyio.fail_after(10):
            for bus in (peer, other):
                await bus.connected.wait()
        await sender.publish(ResourceUpdated(uri="hive://db5"))
        await heard_peer.until("hive://db5")
        # Published after db 5's event was delivered: a listener on db 6's channel that also heard
        # db 5's would have it queued first.
        await other_sender.publish(ResourceUpdated(uri="hive://db6"))
        await heard_other.until("hive://db6")
    assert heard_peer.uris == ["hive://db5"]
    assert heard_other.uris == ["hive://db6"]


class OtherKindBus:
    """A bus that crosses processes on a state backend other than Redis: the methods a server asks of one (a
    subscription bus that is run while it serves and carries named signals), and no more."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[ServerEvent], None]] = []
        self.on: dict[str, Callable[[str], None]] = {}
        self.sent: list[tuple[str, str]] = []
        self.run = False

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    async def publish(self, event: ServerEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    def on_signal(self, name: str, listener: Callable[[str], None]) -> None:
        self.on[name] = listener

    async def signal(self, name: str, text: str) -> None:
        self.sent.append((name, text))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.run = True
        try:
            yield
        finally:
            self.run = False


async def test_a_bus_of_another_kind_is_run_and_carries_task_cancels(provider: Any, store: Any, tmp_path: Path) -> None:
    bus = OtherKindBus()
    async with running(bus):
        assert bus.run  # run while the server serves, as a Redis bus is
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"))
    mcp_server(provider, store, tasks=engine, bus=bus)
    assert set(bus.on) == {TASK_CANCEL} and engine.tell_others is not None  # a cancel reaches the other instances
    await engine.tell_others("task-1")
    assert bus.sent == [(TASK_CANCEL, "task-1")]
