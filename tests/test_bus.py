"""The cross-process subscription bus (mcp/bus.py) on a real valkey-server: one channel per database."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from hive_mcp.mcp.bus import RedisSubscriptionBus, channel_for
from harness.valkey import ValkeyProcess


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
