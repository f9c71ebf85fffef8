"""Connections before their request is known: a deadline on the headers, and a cap on how many wait at once.

Authentication needs the headers, so until they are in a connection is a
stranger's. uvicorn gives a connection no deadline for its first request's
headers (`timeout_keep_alive` runs only between requests), so a client sending
one byte every few seconds held a connection (and a file descriptor) for as
long as it liked; a thousand of them held every descriptor, and no caller got
in. The guard cannot live in an ASGI layer, which sees a request only once its
headers are complete: it lives in the HTTP protocol, one level down, as a
subclass of uvicorn's h11 protocol (`GuardedH11Protocol`, passed as uvicorn's
`http=`).

- A connection waiting for a request's headers (the first, and each one after a
  response on a kept-alive connection) gets `HIVE_MCP_HEADER_TIMEOUT_S`; then it
  is answered 408 and closed.
- At most `HIVE_MCP_MAX_UNAUTHENTICATED` connections wait so at once. One more
  closes a waiting one of the address with the most waiting (its oldest, once
  it has waited `EVICT_AFTER_S`), so a flood from one address evicts its own,
  and a caller from elsewhere, whose headers take a moment, gets in. (A flood spread over many addresses, or one
  faster than a caller's headers, needs a proxy in front: see the README.)

Once its headers are in, a request goes to the HTTP guard, which answers a
request without a valid token 401 and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["Door", "GuardedH11Protocol", "guard_connections"]

logger = logging.getLogger("hive_mcp.http")

EVICT_AFTER_S = 0.5
"""A waiting connection younger than this is never closed to make room: a burst of callers' connections is
accepted all at once, before any of their headers is read (behind a proxy, from one address), and is through in
milliseconds; a stranger's slow headers are older. Until one is old enough, the cap is exceeded."""

TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Door:
    """One server's connections that are waiting for a request's headers, by peer address, oldest first."""

    def __init__(self, timeout_s: float, max_waiting: int) -> None:
        self.timeout_s = timeout_s
        self.max_waiting = max_waiting
        self._waiting: dict[str, dict[GuardedH11Protocol, asyncio.TimerHandle]] = {}
        self._count = 0
        self.evicted = 0  # for the log line: how many were closed to make room

    def arrive(self, conn: GuardedH11Protocol) -> None:
        """`conn` waits for headers from now: its deadline is armed; past the cap, another one makes room."""
        if conn.waiting_since is not None:
            return
        if self._count >= self.max_waiting and (peer := self._evict(conn.loop.time())) is not None:
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                logger.warning(
                    "%d connections were waiting for their headers (HIVE_MCP_MAX_UNAUTHENTICATED): the oldest of "
                    "the busiest address (%s) is closed for each new one (%d so far)",
                    self.max_waiting, peer, self.evicted,
                )  # fmt: skip
        conn.waiting_since = conn.loop.time()
        handle = conn.loop.call_later(self.timeout_s, self._expire, conn)
        self._waiting.setdefault(conn.peer, {})[conn] = handle
        self._count += 1

    def _evict(self, now: float) -> str | None:
        """Close the oldest waiting connection of the busiest address if it has waited `EVICT_AFTER_S`; its
        address, or None when none was old enough."""
        crowded = max(self._waiting.values(), key=len)
        oldest = next(iter(crowded))
        if oldest.waiting_since is None or now - oldest.waiting_since < EVICT_AFTER_S:
            return None
        self.leave(oldest)
        oldest.close_waiting(b"")
        return oldest.peer

    def leave(self, conn: GuardedH11Protocol) -> None:
        """`conn` has its headers in (or is gone): no deadline, no place among the waiting."""
        if conn.waiting_since is None:
            return
        conn.waiting_since = None
        mine = self._waiting.get(conn.peer, {})
        handle = mine.pop(conn, None)
        if handle is not None:
            handle.cancel()
            self._count -= 1
        if not mine:
            self._waiting.pop(conn.peer, None)

    def _expire(self, conn: GuardedH11Protocol) -> None:
        self.leave(conn)
        logger.debug("408 for %s: no complete request headers within %gs", conn.peer, self.timeout_s)
        conn.close_waiting(TIMEOUT_REPLY)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the `Door` of its server watching each wait for request headers.

    The `Door` lives on uvicorn's per-server state; its settings come from the
    uvicorn config (`guard_connections`), which is what each worker process gets too.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        door = getattr(server_state, "hive_door", None)
        if door is None:
            door = Door(config.hive_header_timeout_s, config.hive_max_unauthenticated)
            server_state.hive_door = door
        self.door: Door = door
        self.waiting_since: float | None = None
        self.peer = "?"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.peer = self.client[0] if self.client else "?"
        self.door.arrive(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.door.leave(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Waiting while the client owes a request's headers (h11: their side idle), else not."""
        if self.transport.is_closing():
            self.door.leave(self)
        elif self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self.door.arrive(self)
        else:
            self.door.leave(self)

    def close_waiting(self, reply: bytes) -> None:
        if not self.transport.is_closing():
            if reply:
                self.transport.write(reply)
            self.transport.close()


def guard_connections(config: Any, header_timeout_s: float, max_unauthenticated: int) -> None:
    """Have uvicorn `config` serve HTTP/1.1 through `GuardedH11Protocol` with these limits (before it loads)."""
    config.http = GuardedH11Protocol
    config.hive_header_timeout_s = header_timeout_s
    config.hive_max_unauthenticated = max_unauthenticated
