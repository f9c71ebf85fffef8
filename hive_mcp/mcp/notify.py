"""Change notifications: a source's listener thread -> the event loop -> every subscriber.

The sources (the dump store, the model catalogue) call their listeners from
whatever thread changed them, so the notifier hops onto the event loop and fans
out from there to `subscriptions/listen` streams (2026-07-28) and to legacy
(2025-11-25) sessions.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent, SubscriptionBus

from ..listeners import Throttle
from ..sdk_compat import run_sync_soon, session_connection
from ..tokens import owner_scope
from .audience import Audience, hears, join, owned, owners_of
from .callers import caller
from .constants import NOTIFY_TIMEOUT_S, logger


@dataclass(frozen=True)
class ChangeSource:
    """One thing whose changes clients hear about, and what a change of it means for them.

    `add_listener`/`remove_listener` take a callback called from any thread; a
    change is a `resources/updated` of each of `updated()` (asked on the event
    loop, after the change), and a `resources/list_changed` too when
    `list_changed` (the change adds or removes resources). `owners()` (asked on the
    loop too) names the callers whose things changed, who alone hear of it; None:
    the change is everyone's (the model catalogue).
    """

    add_listener: Callable[[Callable[[], None]], None]
    remove_listener: Callable[[Callable[[], None]], None]
    updated: Callable[[], Iterable[str]]
    list_changed: bool
    owners: Callable[[], Audience] = lambda: None


class Touched(Throttle):
    """A source whose changes name what changed (a conversation id) and whose it is, as a `ChangeSource` needs it,
    told at most once a second (`Throttle`): a client calling in a loop hears of its new conversations once a
    second, not once a call, and every change still reaches it.

    `touch(key, owner)` records both; `updated()` (on the loop) returns the URIs of every key touched since it was
    last asked, through `uris_of`, and `owners()` the owners of what was touched since it was last asked.
    """

    def __init__(self, uris_of: Callable[[str], Iterable[str]], **throttle: Any) -> None:
        super().__init__(**throttle)
        self._uris_of = uris_of
        self._keys: set[str] = set()

    def touch(self, key: str, owner: str) -> None:
        with self._lock:
            self._keys.add(key)
        self.changed(owner)

    def updated(self) -> list[str]:
        with self._lock:
            keys, self._keys = sorted(self._keys), set()
        return list(dict.fromkeys(uri for key in keys for uri in self._uris_of(key)))


@dataclass(eq=False)
class _Waker:
    """One running event loop's way in: poke it from any thread."""

    token: Any
    thread_id: int
    event: anyio.Event = field(default_factory=anyio.Event)
    pending: set[int] = field(default_factory=set)
    """Which sources changed since the last broadcast (touched only on the loop)."""

    def _set(self, source: int) -> None:
        self.pending.add(source)
        self.event.set()

    def poke(self, source: int) -> None:
        if threading.get_ident() == self.thread_id:
            self._set(source)
            return
        try:
            # Fire and forget: the changing thread never waits on the loop (which may be shutting down).
            run_sync_soon(self.token, lambda: self._set(source))
        except Exception as exc:  # the loop is gone or closing: nobody left to tell
            logger.debug("change not delivered: %s: %s", type(exc).__name__, exc)


class ChangeNotifier:
    """Tells clients when a source changes (the set of dumps, the model catalogue).

    2026-07-28 sessions get events on their `subscriptions/listen` streams via the
    server's subscription bus. 2025-11-25 sessions have no listen streams, so the
    sessions are remembered as they make requests and get
    `notifications/resources/list_changed` on their standalone channel (for a
    source whose changes add or remove resources), plus `resources/updated` for
    the URIs they subscribed to.
    """

    def __init__(self, sources: Sequence[ChangeSource], bus: SubscriptionBus, admins: frozenset[str]) -> None:
        self._sources = tuple(sources)
        self._admins = admins
        # One callback per source, kept so that the same object is removed as was added.
        self._callbacks = tuple(self._callback(i) for i in range(len(self._sources)))
        self._bus = bus
        self._lock = threading.Lock()
        self._wakers: list[_Waker] = []
        self._legacy: dict[Connection, set[str]] = {}
        self._scopes: dict[Connection, str | None] = {}  # each legacy session's `owner_scope`
        self.bus = CallerBus(bus)
        """What the server's listen streams subscribe to: each hears only what its caller may see."""

    # -- any thread --------------------------------------------------------

    def _callback(self, source: int) -> Callable[[], None]:
        def on_change() -> None:
            with self._lock:
                waker = self._wakers[0] if self._wakers else None
            if waker is not None:  # one loop fans out, so no client hears a change twice
                waker.poke(source)

        return on_change

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
                    for source, callback in zip(self._sources, self._callbacks):
                        source.add_listener(callback)
            try:
                yield
            finally:
                with self._lock:
                    self._wakers.remove(waker)
                    if not self._wakers:
                        for source, callback in zip(self._sources, self._callbacks):
                            source.remove_listener(callback)
                tg.cancel_scope.cancel()

    async def _pump(self, waker: _Waker) -> None:
        while True:
            await waker.event.wait()
            waker.event = anyio.Event()  # changes during the broadcast wake us again: bursts coalesce
            changed, waker.pending = [self._sources[i] for i in sorted(waker.pending)], set()
            try:
                await self._broadcast(changed)
            except Exception:
                logger.exception("could not send the change notifications")

    async def _broadcast(self, changed: list[ChangeSource]) -> None:
        # Who hears of each change, beside admins and `local` (who hear of every one): its sources' owners.
        listing: Audience = frozenset()
        updated: dict[str, Audience] = {}
        for source in changed:
            owners = source.owners()
            if source.list_changed:
                listing = join(listing, owners)
            for uri in source.updated():
                updated[uri] = join(updated.get(uri, frozenset()), owners)
        list_changed = any(source.list_changed for source in changed)
        if list_changed:
            await self._bus.publish(owned(ResourcesListChanged(), listing))
        for uri, owners in updated.items():
            await self._bus.publish(owned(ResourceUpdated(uri=uri), owners))
        for conn, uris in list(self._legacy.items()):
            scope = self._scopes.get(conn)
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):  # one stuck client must not hold up the rest
                if list_changed and hears(scope, listing):
                    await conn.send_resource_list_changed()
                for uri, owners in updated.items():
                    if uri in uris and hears(scope, owners):
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
            self._scopes[conn] = owner_scope(caller(ctx), self._admins)
            conn.exit_stack.callback(self._legacy.pop, conn, None)
            conn.exit_stack.callback(self._scopes.pop, conn, None)
        return conn

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].discard(uri)

    async def listen(self, ctx: ServerRequestContext[Any, Any], serve: Callable[[], Any]) -> Any:
        """Serve a `subscriptions/listen` stream (`serve()`) that hears only what this caller may see."""
        token = _LISTENER_SCOPE.set(owner_scope(caller(ctx), self._admins))
        try:
            return await serve()
        finally:
            _LISTENER_SCOPE.reset(token)

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


_LISTENER_SCOPE: ContextVar[str | None] = ContextVar("hive_mcp_listener_scope", default=None)
"""The `owner_scope` of the listen stream subscribing now (set by `ChangeNotifier.listen`)."""


class CallerBus:
    """The server's `SubscriptionBus` as its listen streams see it: a listener subscribed while a caller's
    stream opens (`ChangeNotifier.listen`) hears only the events that caller may see (`audience.hears`)."""

    def __init__(self, bus: SubscriptionBus) -> None:
        self._bus = bus

    async def publish(self, event: ServerEvent) -> None:
        await self._bus.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        scope = _LISTENER_SCOPE.get()

        def deliver(event: ServerEvent) -> None:
            if hears(scope, owners_of(event)):
                listener(event)

        return self._bus.subscribe(deliver)
