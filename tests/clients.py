"""Helpers for tests that drive the MCP layer in-process with the SDK's real Client."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import FailureDump
from hive_mcp.mcp import build_server
from tests.conftest import MODEL, sample_dump

WAIT = 5.0  # upper bound for anything that should happen promptly; never slept


@asynccontextmanager
async def connect(server: MCPServer, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(server, raise_exceptions=True, mode=mode, **kwargs) as client:
        yield client


def mcp_server(provider: Any, store: Any, **kwargs: Any) -> MCPServer:
    """The server under test, in process: `build_server` with the tests' default model unless told another.
    Every test builds its server here, so a change to how a server is built is made in one place."""
    return build_server(provider, store, **{"default_model": MODEL, **kwargs})


def text_of(result: types.CallToolResult) -> str:
    """The one text a tool result carries (a result with other content fails the test)."""
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent), result.content
    return result.content[0].text


async def wait_thread_event(ev: threading.Event, timeout: float = WAIT) -> bool:
    return await anyio.to_thread.run_sync(ev.wait, timeout)


async def until(pred: Callable[[], bool], what: str) -> None:
    """Poll `pred` until true; fail after WAIT seconds."""
    with anyio.fail_after(WAIT):
        while not pred():
            await anyio.sleep(0.005)


DUMPS_FROM = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
"""When `make_dump`'s dumps were written: recent, so the store's 30-day retention keeps them."""


async def hear(sub: AsyncIterator[Any], wanted: set[str], timeout: float = WAIT) -> set[str]:
    """Read a `listen` stream until every one of `wanted` was heard; an event is named by its uri, else its type."""
    heard: set[str] = set()
    with anyio.fail_after(timeout):
        async for event in sub:
            heard.add(getattr(event, "uri", None) or type(event).__name__)
            if wanted <= heard:
                break
    return heard


def make_dump(i: int, *, error_type: str = "rate_limit", model: str = MODEL, when: datetime | None = None) -> FailureDump:
    ts = when or DUMPS_FROM + timedelta(seconds=i)
    return sample_dump(ts, error_type=error_type, model=model, content=f"message {i}")


class Progress:
    """Collects progress notifications; `wait_for(pred)` waits until one matches; `on_first_text()` is called
    as the first one with text arrives."""

    def __init__(self, on_first_text: Callable[[], None] | None = None) -> None:
        self.items: list[tuple[float, str | None]] = []
        self._changed = anyio.Event()
        self._on_first_text = on_first_text

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if message and self._on_first_text is not None and not self.text:
            self._on_first_text()
        self.items.append((progress, message))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, pred: Callable[[list[tuple[float, str | None]]], bool]) -> None:
        with anyio.fail_after(WAIT):
            while not pred(self.items):
                await self._changed.wait()

    @property
    def text(self) -> str:
        return "".join(m for _, m in self.items if m)

    @property
    def heartbeats(self) -> int:
        return sum(1 for _, m in self.items if m is None)

    def increasing(self) -> bool:
        values = [p for p, _ in self.items]
        return all(a < b for a, b in zip(values, values[1:]))


class Notifications:
    """Collects resource change notifications from a legacy session."""

    KINDS = (types.ResourceListChangedNotification, types.ResourceUpdatedNotification)

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, self.KINDS):
            self.seen.append(message)
            self._changed.set()
            self._changed = anyio.Event()

    def count(self, kind: type) -> int:
        return sum(isinstance(m, kind) for m in self.seen)

    async def wait_for(self, kind: type, count: int) -> None:
        with anyio.fail_after(WAIT):
            while self.count(kind) < count:
                await self._changed.wait()
