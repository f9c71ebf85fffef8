"""Change notifications: a store's change (any thread) -> the event loop -> every subscriber.

The dump store calls its listeners from whatever thread wrote, and the
conversations call `changed` with the URIs they touched, so the notifier hops
onto the event loop and fans out from there to `subscriptions/listen` streams
(2026-07-28) and to legacy (2025-11-25) sessions. Changes that arrive during a
broadcast are gathered into the next one.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourcesListChanged, ResourceUpdated

from ..dumps import DumpStore
from ..sdk_compat import run_sync_soon, session_connection
from .constants import INDEX_URI, NOTIFY_TIMEOUT_S, logger

@dataclass(eq=False)
class _Waker:
    """One running event loop's way in: poke it from any thread."""

    token: Any
    thread_id: int
    event: anyio.Event = field(default_factory=anyio.Event)

    def _set(self) -> None:
        self.event.set()

    def poke(self) -> None:
        if threading.get_ident() == self.thread_id:
            self._set()
            return
        try:
            # Fire and forget: the writer never waits on the loop (which may be shutting down).
            run_sync_soon(self.token, self._set)
        except Exception as exc:  # the loop is gone or closing: nobody left to tell
            logger.debug("dump change not delivered: %s: %s", type(exc).__name__, exc)


class ChangeNotifier:
    """Tells clients when the set of dumps (or of conversations) changes.

    2026-07-28 sessions get events on their `subscriptions/listen` streams via the
    server's subscription bus. 2025-11-25 sessions have no listen streams, so the
    sessions are remembered as they make requests and get
    `notifications/resources/list_changed` on their standalone channel (plus
    `resources/updated` for those subscribed to the index).
    """

    def __init__(self, store: DumpStore, bus: InMemorySubscriptionBus) -> None:
        self._store = store
        self._bus = bus
        self._lock = threading.Lock()
        self._wakers: list[_Waker] = []
        self._legacy: dict[Connection, set[str]] = {}
        self._pending: set[str] = set()

    # -- any thread --------------------------------------------------------

    def _on_store_change(self) -> None:
        self.changed(INDEX_URI)

    def changed(self, *uris: str) -> None:
        """The resources at `uris` changed (and so did the resource list): tell every client, soon."""
        with self._lock:
            self._pending.update(uris)
            waker = self._wakers[0] if self._wakers else None
        if waker is not None:  # one loop fans out, so no client hears a change twice
            waker.poke()

    # -- the event loop ----------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver changes while the server runs (entered from the server's lifespan)."""
        waker = _Waker(anyio.lowlevel.current_token(), threading.get_ident())
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, waker)
            with self._lock:
                self._wakers.append(waker)
                if len(self._wakers) == 1:
                    self._store.add_listener(self._on_store_change)
            try:
                yield
            finally:
                with self._lock:
                    self._wakers.remove(waker)
                    if not self._wakers:
                        self._store.remove_listener(self._on_store_change)
                tg.cancel_scope.cancel()

    async def _pump(self, waker: _Waker) -> None:
        while True:
            await waker.event.wait()
            waker.event = anyio.Event()  # changes during the broadcast wake us again: bursts coalesce
            try:
                await self._broadcast()
            except Exception:
                logger.exception("could not send the dump change notifications")

    async def _broadcast(self) -> None:
        with self._lock:
            changed, self._pending = sorted(self._pending), set()
        await self._bus.publish(ResourcesListChanged())
        for uri in changed:
            await self._bus.publish(ResourceUpdated(uri=uri))
        for conn, uris in list(self._legacy.items()):
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):  # one stuck client must not hold up the rest
                await conn.send_resource_list_changed()
                for uri in changed:
                    if uri in uris:
                        await conn.send_resource_updated(uri)

    def track(self, ctx: ServerRequestContext[Any, Any]) -> Connection | None:
        """Remember a legacy session so it hears about changes; forgotten when it closes."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        conn = session_connection(ctx.session)
        if conn is None or not conn.has_standalone_channel:
            return None
        if conn not in self._legacy:
            self._legacy[conn] = set()
            conn.exit_stack.callback(self._legacy.pop, conn, None)
        return conn

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].discard(uri)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Track legacy sessions, and advertise resources.listChanged in their handshake."""
        result = await call_next(ctx)
        if ctx.method == "initialize":
            if isinstance(result, dict):
                caps = result.get("capabilities")
                if isinstance(caps, dict) and isinstance(caps.get("resources"), dict):
                    caps["resources"]["listChanged"] = True
        else:
            self.track(ctx)
        return result
