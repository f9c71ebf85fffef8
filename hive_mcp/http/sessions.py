"""Streamable-HTTP sessions per caller: at most `HIVE_MCP_SESSIONS_PER_CALLER` open at once.

The SDK binds a session to the caller that opened it (the HTTP guard names the
caller in `scope["user"]`; another caller's request on it gets 404, DELETE too)
and ends it after `HIVE_MCP_SESSION_IDLE_S` unused. Its only cap is one for all
callers together, so one caller opening sessions in a loop would lock everyone
else out. This layer counts each caller's open sessions and refuses the one past
their share with 429 and one line; other callers are not affected. Refusing the
new one, rather than closing an old one, never ends a session someone is using:
a client that leaves without DELETE has its sessions back after the idle time.

A legacy (HTTP+SSE) session lives exactly as long as its `GET /sse` event stream,
so there a caller's open sessions are their open streams (`SseSessionQuota`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container

from ..tokens import CALLER_STATE_KEY
from ..asgi import MCP_PATH, SSE_PATH, App, Message, Receive, Scope, Send, header, respond

__all__ = ["SessionQuota", "SseSessionQuota"]

logger = logging.getLogger("hive_mcp.http")

SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


class SessionQuota:
    """ASGI middleware in front of the SDK's stateful streamable-HTTP app: the per-caller session cap."""

    def __init__(self, app: App, *, per_caller: int, idle_s: float, open_ids: Callable[[], Container[str]]) -> None:
        """`open_ids()` gives the ids of the sessions the SDK holds open now (`sdk_compat.open_session_ids`)."""
        self.app = app
        self.per_caller = per_caller
        self.idle_s = idle_s
        self._open_ids = open_ids
        self._sessions: dict[str, dict[str, None]] = {}  # caller -> their session ids, oldest first
        self._opening: dict[str, int] = {}  # caller -> requests opening a session now

    def open_count(self, who: str) -> int:
        """How many sessions `who` holds open now (those the SDK has ended are forgotten here)."""
        live = self._open_ids()
        mine = self._sessions.get(who, {})
        for sid in [s for s in mine if s not in live]:
            del mine[sid]
        if not mine:
            self._sessions.pop(who, None)
        return len(mine)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _opens_session(scope):
            await self.app(scope, receive, send)
            return
        who = _caller(scope)
        if self.open_count(who) + self._opening.get(who, 0) >= self.per_caller:
            await _refuse(send, who, self.per_caller, f"end one (DELETE) or let one sit unused for {self.idle_s:g}s",
                          retry_after_s=self.idle_s)  # fmt: skip
            return
        self._opening[who] = self._opening.get(who, 0) + 1
        counted = True  # among the caller's opening requests, until its session is counted among the open ones

        def opened() -> None:
            nonlocal counted
            if counted:
                counted = False
                self._opening[who] -= 1
                if not self._opening[who]:
                    del self._opening[who]

        async def noting(message: Message) -> None:
            if message.get("type") == "http.response.start" and message.get("status", 500) < 400:
                sid = _response_header(message, SESSION_HEADER)
                if sid:
                    self._sessions.setdefault(who, {})[sid] = None
                    opened()  # the SDK's handler may wind down after the client has its answer: count it once
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            opened()


class SseSessionQuota:
    """ASGI middleware in front of the SDK's legacy SSE app: the same per-caller cap, on open event streams."""

    def __init__(self, app: App, *, per_caller: int) -> None:
        self.app = app
        self.per_caller = per_caller
        self._open: dict[str, int] = {}  # caller -> their open event streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET" or scope.get("path") != SSE_PATH:
            await self.app(scope, receive, send)
            return
        who = _caller(scope)
        if self._open.get(who, 0) >= self.per_caller:
            await _refuse(send, who, self.per_caller, "close one of its event streams (GET /sse)")
            return
        self._open[who] = self._open.get(who, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:  # the stream ended, whichever side ended it: the session with it
            self._open[who] -= 1
            if not self._open[who]:
                del self._open[who]


def _caller(scope: Scope) -> str:
    """The caller the HTTP guard named (empty without tokens: every client is the one local caller)."""
    return str((scope.get("state") or {}).get(CALLER_STATE_KEY, ""))


async def _refuse(send: Send, who: str, per_caller: int, remedy: str, retry_after_s: float | None = None) -> None:
    """429 and one line for a session past the caller's share."""
    logger.info("429 for a new session of %s: %d are open (HIVE_MCP_SESSIONS_PER_CALLER)",
                who or "the local caller", per_caller)  # fmt: skip
    message = f"too many open sessions: this caller has {per_caller} (HIVE_MCP_SESSIONS_PER_CALLER); {remedy}"
    headers = [] if retry_after_s is None else [(b"retry-after", str(max(1, round(retry_after_s))).encode())]
    await respond(send, 429, {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}, headers)


def _opens_session(scope: Scope) -> bool:
    """A POST to the MCP path with no session id, in a protocol era with sessions (the handshake's)."""
    if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") != MCP_PATH:
        return False
    if header(scope, SESSION_HEADER) is not None:
        return False
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    version = header(scope, VERSION_HEADER)
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS


def _response_header(message: Message, name: bytes) -> str | None:
    for key, value in message.get("headers", ()):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None
