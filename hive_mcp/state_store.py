"""The state store (Redis or Valkey at HIVE_MCP_STATE_URL) as one process holds it: one notion of whether it
is there, shared by every store on it (conversations, the spend ledger, failure dumps, the change bus).

`StateStore.shared(url)` is the process's one instance for a URL. It holds the
process's one connection pool for that URL: one async client, on an event loop
of its own (the state loop, in a daemon thread). Every store sends its commands
there: the blocking ones (the ledger and the dumps, called from worker and
provider threads and from the command line) wait on the result with `run`, the
async ones (conversations and the bus, on the server's event loop) await it
with `arun`. So whichever store asks, and from whichever thread or loop, one
idle connection serves them all: a process holds as many connections as it
has commands in flight at once (one when they come one at a time), plus the
bus's subscriber. Every connection has a short timeout (`TIMEOUT_S`) and no
retry but one: a command whose pooled connection the server had closed (a
restart) is sent once more on a fresh one. A timeout is never retried.

The first failure of any store (refused, reset, or timed out: a frozen Redis
answers nothing) opens the breaker: one warning, and from then on no store asks
Redis on the call path; each degrades as it documents (conversations refuse to
continue, budgets refuse, settled calls wait in the spend journal, dumps go to
the local directory, change events stay in the process). A background probe
pings Redis every `PROBE_S`; its first answer closes the breaker for every store
at once, with one warning. So an outage costs this process at most one timeout
per call in flight when it began, and every store resumes within `PROBE_S` plus
one timeout of Redis answering again.

The command line does not degrade: it asks once (`check`) and, for the dumps,
raises `StateUnavailable` at any later failure, so an operator never reads the
local directory's "nothing" as the shared store's answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from .listeners import Listeners
from .observe import metrics
from .outage import Outage

__all__ = ["PROBE_S", "TIMEOUT_S", "StateStore", "StateUnavailable", "redacted_url", "says_away"]

logger = logging.getLogger("hive_mcp.state")

T = TypeVar("T")

TIMEOUT_S = 1.0
"""Connecting and each command: longer than any command of ours takes on a live Redis."""
PROBE_S = 1.0
"""While Redis is away, how often the probe asks it again."""


def redacted_url(url: str) -> str:
    """The URL without user name or password: how the store is named in messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"  # no query: it may carry a password too


def says_away(exc: BaseException) -> bool:
    """Whether `exc`, raised by a command, says Redis is away (refused, reset, timed out: the breaker's business),
    rather than that Redis answered with an error (a wrong type, a script's error: Redis is there)."""
    from redis.exceptions import ConnectionError as RedisConnectionError, RedisError, TimeoutError as RedisTimeout

    return isinstance(exc, (RedisConnectionError, RedisTimeout)) or (isinstance(exc, OSError)
                                                                     and not isinstance(exc, RedisError))


class StateUnavailable(Exception):
    """Redis did not answer a caller that does not degrade (the command line): one line naming the store, without
    its password, and HIVE_MCP_STATE_URL."""


class StateStore(Listeners):
    """One Redis (by URL, password in it) for this process: its pool (on the state loop), its breaker, its
    probe. Its listeners are told (in the probe's thread) when Redis is back."""

    _shared: ClassVar[dict[str, StateStore]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str, *, timeout_s: float = TIMEOUT_S, probe_s: float = PROBE_S) -> None:
        super().__init__()
        self.url = url
        self.name = redacted_url(url)
        parts = urlsplit(url)
        self.address = (parts.hostname or "localhost", parts.port or 6379)
        self.timeout_s = timeout_s
        self.probe_s = probe_s
        self.outage = Outage(
            logger, "the state store (Redis) is unavailable (%s) at %s: conversations cannot be continued, budgets "
            "refuse calls, settled calls wait in the spend journal, failure dumps go to the local directory and "
            "change notifications stay in this process until it answers",
            f"the state store (Redis) is back at {self.name}: every store uses it again", self.name,
            retry_s=math.inf, store="redis",  # only the probe asks again
        )  # fmt: skip
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._pid = 0  # the process the loop and the pool belong to: a forked child starts its own
        self._probing = False
        self._stop = threading.Event()  # never set: the probe is a daemon thread, ended with the process
        self._up = threading.Event()
        self._up.set()

    @classmethod
    def shared(cls, url: str) -> StateStore:
        """This process's instance for `url`."""
        with cls._shared_lock:
            found = cls._shared.get(url)
            if found is None:
                found = cls._shared[url] = cls(url)
            return found

    @classmethod
    def all(cls) -> list[StateStore]:
        """Every state store this process opened."""
        with cls._shared_lock:
            return list(cls._shared.values())

    def _options(self) -> dict[str, Any]:
        """Short timeouts; one retry, on a fresh connection, of a command whose connection the server closed
        (a pooled connection from before a restart), and none of a timeout (a frozen Redis). Every connection
        is named after the process (`CLIENT SETNAME hive-mcp:<pid>`), so `CLIENT LIST` tells whose it is; a
        `client_name` in the URL is the operator's and wins (redis-py puts the URL's options last)."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        return {
            "socket_connect_timeout": self.timeout_s, "socket_timeout": self.timeout_s,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            "client_name": f"hive-mcp:{os.getpid()}",
        }  # fmt: skip

    def _state_loop(self) -> asyncio.AbstractEventLoop:
        """The state loop, started by the first store that asks (in this process)."""
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="hive-mcp-state", daemon=True)
                self._thread.start()
                self._loop, self._client, self._pid = loop, None, os.getpid()
            return self._loop

    def aclient(self) -> Any:
        """The process's client (one pool), replies decoded. Its commands are coroutines to send with `run`
        or `arun`: they run on the state loop, where its connections live."""
        self._state_loop()
        with self._lock:
            if self._client is None:
                import redis.asyncio as aioredis

                self._client = aioredis.from_url(self.url, decode_responses=True, **self._options())
            return self._client

    def run(self, command: Coroutine[Any, Any, T]) -> T:
        """Send `command` (built on `aclient()`) and wait for its reply: the blocking stores' way."""
        loop = self._state_loop()
        if threading.current_thread() is self._thread:
            command.close()
            raise RuntimeError("a blocking state-store call on the state loop itself")
        started, op = time.perf_counter(), _op(command)
        try:
            return asyncio.run_coroutine_threadsafe(command, loop).result()
        finally:
            metrics.state_latency("redis", op, time.perf_counter() - started)

    async def arun(self, command: Coroutine[Any, Any, T]) -> T:
        """Send `command` (built on `aclient()`) and await its reply from any event loop; cancelling the
        caller cancels the command."""
        loop = self._state_loop()
        started, op = time.perf_counter(), _op(command)
        try:
            if asyncio.get_running_loop() is loop:
                return await command
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(command, loop))
        finally:
            metrics.state_latency("redis", op, time.perf_counter() - started)

    def check(self) -> None:
        """Ask Redis once (PING), apart from the breaker: nothing is logged and no probe starts. Raises
        StateUnavailable when it does not answer."""
        import redis

        try:
            self.run(self.aclient().ping())
        except (redis.RedisError, OSError) as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> StateUnavailable:
        """`exc`, a failure to reach Redis, as the one line a command prints; the password is in no form in it."""
        from .redact import redact_text, secret_forms, url_secrets

        why = redact_text(f"{type(exc).__name__}: {exc}", secret_forms(url_secrets(self.url)))
        return StateUnavailable(f"the state store at {self.name} (HIVE_MCP_STATE_URL) did not answer: {why}")

    def usable(self) -> bool:
        """Whether to ask Redis now: False from the first failure until the probe hears it again."""
        return self.outage.usable()

    def failed(self, exc: BaseException) -> None:
        """A store's call failed: the breaker opens (one warning) and the probe starts."""
        self.outage.failed(exc)
        self._up.clear()
        with self._lock:
            if self._probing:
                return
            self._probing = True
        threading.Thread(target=self._probe, name="hive-mcp-state-probe", daemon=True).start()

    def worked(self) -> None:
        was_down = not self._up.is_set()
        self.outage.worked()
        self._up.set()
        if was_down:
            self.notify()

    def wait_usable(self, timeout_s: float) -> bool:
        """Block until the breaker is closed (at most `timeout_s`); whether it is."""
        return self._up.wait(timeout_s)

    def _probe(self) -> None:
        import redis

        while not self._stop.wait(self.probe_s):
            try:
                self.run(self.aclient().ping())  # on the process's pool: no connection of its own
            except (redis.RedisError, OSError):
                continue
            with self._lock:
                self._probing = False  # before `worked`: a failure from now on starts another probe
            self.worked()
            return

    async def aclose(self) -> None:
        """Close the pool's idle connections (at the end of the loop that serves); commands in flight, of
        other stores, keep theirs, and the next command opens one again."""
        with self._lock:
            client = self._client if self._pid == os.getpid() else None
        if client is not None:
            try:
                await self.arun(client.connection_pool.disconnect(inuse_connections=False))
            except Exception:  # noqa: BLE001 - a connection already gone
                pass


def _op(command: Coroutine[Any, Any, Any]) -> str:
    """The round trip's label: the client method's name (`execute_command`, `execute`, ...), never its arguments."""
    return getattr(command, "__name__", "command")
