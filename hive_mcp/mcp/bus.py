"""A subscription bus across processes: the SDK's `SubscriptionBus` over Redis (or Valkey) pub/sub.

Every process (worker or instance) publishing to the same Redis hears every
other's change events, so a `subscriptions/listen` stream open on one process
hears of a dump written, a conversation continued or a deployment cooled down
on another. Events go to this process's own listeners at once, then to Redis
tagged with this bus's origin; what comes back from Redis with that origin is
skipped, so nobody hears a change twice.

The same channel carries signals: a name and a text for the other processes only (`signal`, `on_signal`), such
as "cancel task T" from the instance a client asked to the instance running it.

Redis unavailable: local listeners are still told (nothing on the call path
waits on Redis or fails because of it), and the reader reconnects once Redis
returns. Redis is asked through the process's `StateStore` (its pool, its
timeouts and its breaker: one warning per outage for every store, and no
publish while the breaker is open). Events published meanwhile do not reach other
processes: like the SDK's own streams, delivery has no replay (clients re-listen
and refetch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from secrets import token_hex
from typing import Any, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel, ValidationError

from mcp.server.subscriptions import InMemorySubscriptionBus, ServerEvent
from mcp.shared.subscriptions import event_from_wire, event_to_notification

from ..defaults import REDIS_PREFIX
from ..state_store import StateStore
from .audience import owned, owners_of

__all__ = ["DEFAULT_CHANNEL", "ProcessBus", "RedisSubscriptionBus", "channel_for", "running"]

DEFAULT_CHANNEL = f"{REDIS_PREFIX}events"
RECONNECT_S = (0.2, 1.0)  # first and longest wait between attempts to reach Redis again: it resumes within 5 s
POLL_S = 0.5  # under the state store's socket timeout: an idle channel is not a timed-out Redis


@runtime_checkable
class ProcessBus(Protocol):
    """A subscription bus that crosses processes, whatever state backend carries it (`RedisSubscriptionBus` on
    Redis): run while the server serves, and carrying named signals (a task's cancel) to every other process."""

    def running(self) -> AbstractAsyncContextManager[None]: ...

    def on_signal(self, name: str, listener: Callable[[str], None]) -> None: ...

    async def signal(self, name: str, text: str) -> None: ...


def channel_for(url: str) -> str:
    """The channel of the database `url` names: Redis channels span a server's databases, the state in them
    does not, so two deployments on one server in databases of their own must not hear each other's changes."""
    from redis.connection import parse_url

    return f"{DEFAULT_CHANNEL}:db{parse_url(url).get('db') or 0}"


class _Envelope(BaseModel):
    """One event on the channel: the bus that published it, the MCP notification announcing it, and the
    callers it concerns (None: everyone), so that other processes tell it only to them. A signal carries
    `signal` (its name) and `params["text"]` instead."""

    origin: str
    method: str = ""
    params: dict[str, Any] | None = None
    owners: list[str] | None = None
    signal: str | None = None


def _encode(origin: str, event: ServerEvent) -> str:
    note = event_to_notification(event, {})
    owners = owners_of(event)
    return _Envelope(
        origin=origin, owners=None if owners is None else sorted(owners),
        **note.model_dump(mode="json", by_alias=True, exclude_none=True),
    ).model_dump_json()  # fmt: skip


def _envelope(data: bytes | str) -> _Envelope | None:
    try:
        return _Envelope.model_validate_json(data)
    except ValidationError:
        return None


def _decode(data: bytes | str) -> tuple[str, ServerEvent] | None:
    env = _envelope(data)
    if env is None or env.signal is not None:
        return None
    event = event_from_wire(env.method, env.params)
    return None if event is None else (env.origin, owned(event, None if env.owners is None else frozenset(env.owners)))


class RedisSubscriptionBus:
    """`SubscriptionBus` whose events also cross to every process on the same Redis channel.

    Run it (`async with bus.running():`) for as long as the server serves: that
    holds the connection and the reader. `url` may carry the password.
    """

    def __init__(self, url: str, channel: str | None = None) -> None:
        self._url = url
        self.channel = channel or channel_for(url)
        self.origin = token_hex(8)
        self._local = InMemorySubscriptionBus()
        self._client: Any = None
        self._outage = StateStore.shared(url)
        self.connected = anyio.Event()
        """Set once the reader has subscribed (for tests and start-up ordering)."""
        self._signals: dict[str, list[Callable[[str], None]]] = {}

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self._local.subscribe(listener)

    def on_signal(self, name: str, listener: Callable[[str], None]) -> None:
        """Call `listener(text)` for each signal `name` another process sends."""
        self._signals.setdefault(name, []).append(listener)

    async def signal(self, name: str, text: str) -> None:
        """Send signal `name` with `text` to the other processes on the channel (not to this one). Best effort:
        with Redis away it is not sent (whoever relies on it has a slower way too)."""
        if self._client is None or not self._outage.usable():
            return
        envelope = _Envelope(origin=self.origin, signal=name, params={"text": text}).model_dump_json()
        try:
            await self._outage.arun(self._client.publish(self.channel, envelope))
        except Exception as exc:  # noqa: BLE001 - Redis down must not fail the caller
            self._outage.failed(exc)
        else:
            self._outage.worked()

    def _heard_signal(self, env: _Envelope) -> None:
        text = (env.params or {}).get("text")
        for listener in self._signals.get(env.signal or "", ()):
            if isinstance(text, str):
                listener(text)

    async def publish(self, event: ServerEvent) -> None:
        await self._local.publish(event)
        if self._client is None or not self._outage.usable():
            return
        try:
            await self._outage.arun(self._client.publish(self.channel, _encode(self.origin, event)))
        except Exception as exc:  # noqa: BLE001 - Redis down must not fail the change that happened
            self._outage.failed(exc)
        else:
            self._outage.worked()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._client = self._outage.aclient()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._client = None  # the pool is the state store's

    async def _read(self) -> None:
        wait = RECONNECT_S[0]
        while True:
            if not self._outage.usable():  # the breaker is open: the probe says when Redis is back
                await anyio.sleep(wait)
                wait = min(wait * 2, RECONNECT_S[1])
                continue
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await self._outage.arun(pubsub.subscribe(self.channel))
                self._outage.worked()
                self.connected.set()
                wait = RECONNECT_S[0]
                while True:
                    message = await self._outage.arun(pubsub.get_message(timeout=POLL_S))
                    if message is None or message.get("type") != "message":
                        continue
                    env = _envelope(message["data"])
                    if env is not None and env.origin != self.origin and env.signal is not None:
                        self._heard_signal(env)
                        continue
                    decoded = _decode(message["data"])
                    if decoded is not None and decoded[0] != self.origin:
                        await self._local.publish(decoded[1])
            except Exception as exc:  # noqa: BLE001 - any failure of the connection: retry
                self._outage.failed(exc)
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._outage.arun(pubsub.aclose())
                    except Exception:  # noqa: BLE001 - the connection is already gone
                        pass
            await anyio.sleep(wait)
            wait = min(wait * 2, RECONNECT_S[1])


@asynccontextmanager
async def running(bus: Any) -> AsyncIterator[None]:
    """Run `bus` if it needs running (one that crosses processes); the SDK's in-memory bus does not."""
    if isinstance(bus, ProcessBus):
        async with bus.running():
            yield
    else:
        yield
