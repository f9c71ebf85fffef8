"""The outermost layer of the HTTP surface: `/healthz`, bearer-token authentication and the body limit (which
also puts the SDK's 400 for a body that is no JSON-RPC message in one line, as it holds the body)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..jsonrpc import MAX_JSON_DEPTH, nested_deeper_than, plain_refusal
from ..tokens import CALLER_STATE_KEY, digest_name
from ..asgi import HEALTH_PATH, MCP_PATH, App, Message, Receive, Scope, Send, header, log_refusal, peer, respond

__all__ = ["DRAIN_FACTOR", "DRAIN_MIN_BYTES", "DRAIN_S", "HttpGuard"]

logger = logging.getLogger("hive_mcp.http")

DRAIN_FACTOR = 4
"""After a 413, read and discard up to this many times the body limit before closing the connection ..."""
DRAIN_MIN_BYTES = 16 * 1024 * 1024
"""... or this many bytes, if more (a small limit must not make the 413 unreadable: discarding is cheap) ..."""
DRAIN_S = 3.0
"""... and for at most this many seconds.

A client such as httpx or the MCP SDK's sends the whole body before it reads
the response. Closed on while it is still sending, it reports a broken
connection (httpx: ReadError) and never the 413. So the 413 goes out at once,
the rest of the body is read and thrown away (within both bounds: a client
sending without end costs a bounded amount of work), and the connection closes
after. A client that asked `Expect: 100-continue` (curl, for a large body) sends
nothing more once it has the 413, so nothing is read.
"""


class HttpGuard:
    """ASGI middleware: `/healthz`, bearer-token authentication and the request body limit.

    Why our own middleware rather than the SDK's `token_verifier` + `AuthSettings`:
    the SDK's auth is OAuth 2.1's resource-server model. It needs the URL of an
    authorization server (`issuer_url`), publishes protected-resource metadata
    naming it, and its 401s point OAuth-capable clients there, to discover and
    register with a server that does not exist when all there is is a shared
    secret. Someone who sets `HIVE_MCP_AUTH_TOKEN` expects exactly this: send
    `Authorization: Bearer <token>` and get in, else 401. It also lives here,
    with the transport, not in the MCP server's constructor, and it runs before
    any request body is read and for every path, not just the MCP endpoints.

    Tokens are compared by SHA-256 digest with `hmac.compare_digest`, against
    every configured token with no early exit: the time taken tells nothing
    about a token's content or length. A request that passes has its
    Authorization header removed before the SDK sees it, so no log downstream
    can print it; we never log it either.

    The body limit is enforced here and only here (the SDK's own limit is set
    out of reach, see `hive_mcp.http.app`): this layer sees every path, decides
    on Content-Length before any byte is read, counts a chunked body as it
    streams in, answers JSON naming the limit, and lets the client read its 413
    (see `DRAIN_S`).
    """

    def __init__(self, app: App, *, tokens: Iterable[str], max_body_bytes: int) -> None:
        self.app = app
        self._digests = tuple(hashlib.sha256(t.encode()).digest() for t in tokens)
        # Each digest -> the caller name its token goes by (`bearer_tokens` named the tokens before this).
        self._names = {d: digest_name(d) for d in self._digests}
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":  # no websockets here
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        scope = _caseless_names(scope)
        method = scope.get("method", "GET")
        if scope.get("path") == HEALTH_PATH:
            if method in ("GET", "HEAD"):
                await respond(send, 200, {"status": "ok"}, head=method == "HEAD")
            else:
                await respond(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET, HEAD")])
            return
        if self._digests:
            authenticated = await self._authenticate(scope, receive, send)
            if authenticated is None:
                return
            scope = authenticated
        await self._limit_body(scope, receive, send)

    # -- authentication --------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (no token: nothing is authenticated)."""
        return bool(self._digests)

    def verify(self, presented: bytes | str) -> bool:
        """Whether `presented` is one of the configured tokens (constant time over all of them)."""
        return self._matched(presented) is not None

    def caller_of(self, presented: bytes | str) -> str | None:
        """The caller name `presented` goes by when it is one of the configured tokens, else None (see `verify`)."""
        digest = self._matched(presented)
        return None if digest is None else self._names[digest]

    def _matched(self, presented: bytes | str) -> bytes | None:
        """The digest of `presented` when it is one of the configured tokens, else None (see `verify`)."""
        if isinstance(presented, str):
            presented = presented.encode()
        digest = hashlib.sha256(presented).digest()
        ok = False
        for known in self._digests:  # every token, no early exit
            ok |= hmac.compare_digest(digest, known)
        return digest if ok else None

    async def _authenticate(self, scope: Scope, receive: Receive, send: Send) -> Scope | None:
        """The scope without its Authorization header if the request carries a valid token; else answer 401, and
        read what the drain allows of the body before the connection closes (as for a 413): closed with a body
        unread, it is reset, and a client still sending loses the 401."""
        value = header(scope, b"authorization")
        presented = False
        if value is not None:
            scheme, _, credentials = value.strip().partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() == b"bearer" and credentials:
                presented = True
                digest = self._matched(credentials)
                if digest is not None:
                    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"authorization"]
                    # The caller's name (never the token) for the handlers: it owns their conversations.
                    name = self._names[digest]
                    state = {**(scope.get("state") or {}), CALLER_STATE_KEY: name}
                    return {**scope, "headers": headers, "state": state, "user": _user(name)}
        log_refusal(scope, "invalid bearer token" if presented else "no bearer token")
        challenge = b'Bearer realm="hive-mcp"'
        if presented:
            challenge += b', error="invalid_token"'
        await respond(
            send,
            401,
            {"error": "unauthorized", "error_description": "a valid bearer token is required (Authorization: Bearer)"},
            [(b"www-authenticate", challenge), (b"connection", b"close")],
            more_body=True,
        )
        await self._discard(scope, receive, 0)
        await _end(send)
        return None

    def closing_refusals(self, app: App) -> App:
        """`app`, which answers its own 401s (the dashboard: a browser signs in with a form, it cannot send a
        bearer header), with each 401 ending as the guard's own do: `Connection: close`, what the drain allows
        of a body the app left unread is read, then the connection closes."""

        async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
            refused = body_read = False

            async def watched_receive() -> Message:
                nonlocal body_read
                message = await receive()
                body_read = body_read or message.get("type") != "http.request" or not message.get("more_body")
                return message

            async def watched_send(message: Message) -> None:
                nonlocal refused
                if message.get("type") == "http.response.start" and message.get("status") == 401:
                    refused = True
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
                elif refused and message.get("type") == "http.response.body" and not message.get("more_body"):
                    await send({**message, "more_body": True})
                    if not body_read:  # read in full, a further receive would wait for the client to hang up
                        await self._discard(scope, receive, 0)
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
                await send(message)

            await app(scope, watched_receive, watched_send)

        return refusing

    # -- body limit ------------------------------------------------------------------

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio
        import anyio.lowlevel

        limit = self.max_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await respond(send, 400, {"error": "invalid Content-Length"}, [(b"connection", b"close")])
                return
            if size > limit:
                await self._too_large(scope, send, size)
                if size <= self._drain_budget:
                    await self._discard(scope, receive, 0)
                await _end(send)
                return

        received = 0
        rejected = answered = started = False
        app_scope = anyio.CancelScope()
        chunks: list[bytes] = []  # the body so far, for the nesting check (the app keeps it whole too)
        opened = 0  # '[' and '{' seen: while at most MAX_JSON_DEPTH, no nesting can be deeper

        async def refuse(answer: Callable[[], Awaitable[None]]) -> Message:
            nonlocal rejected, answered
            rejected = True
            if not started:
                await answer()
                answered = True
            # Stop the app where it stands, reading the body: a cancellation, which
            # it does not take for an error to log (as it would a disconnect).
            app_scope.cancel()
            await anyio.lowlevel.checkpoint()
            return {"type": "http.disconnect"}

        async def counting_receive() -> Message:
            nonlocal received, opened
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    return await refuse(lambda: self._too_large(scope, send, None))
                chunks.append(body)
                opened += body.count(b"[") + body.count(b"{")
                if not message.get("more_body", False) and opened > MAX_JSON_DEPTH:
                    if nested_deeper_than(b"".join(chunks), MAX_JSON_DEPTH):
                        return await refuse(lambda: self._too_deep(scope, send))
            return message

        held: list[Message] = []  # a 400 the SDK starts, until its body says whether to put it in one line

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # we answered already; the app's reply goes nowhere
            if message.get("type") == "http.response.start":
                started = True
                if message.get("status") == 400 and scope.get("path") == MCP_PATH:
                    held.append(message)
                    return
            elif held:
                held.append(message)
                if message.get("more_body", False):
                    return
                await _send_plain(send, held, b"".join(chunks))
                return
            await send(message)

        with app_scope:
            await self.app(scope, counting_receive, guarded_send)
        if answered:
            await self._discard(scope, receive, received)
            await _end(send)

    async def _too_deep(self, scope: Scope, send: Send) -> None:
        """Start the 400 for JSON nested past MAX_JSON_DEPTH (the caller ends the response)."""
        logger.info("400 for %s %s from %s: JSON nested deeper than %d", scope.get("method"), scope.get("path"),
                    peer(scope), MAX_JSON_DEPTH)  # fmt: skip
        message = f"request body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        await respond(send, 400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": message}},
                      [(b"connection", b"close")], more_body=True)  # fmt: skip

    async def _too_large(self, scope: Scope, send: Send, declared: int | None) -> None:
        """Start the 413; the caller ends the response once it has discarded what it will of the body."""
        logger.info(
            "413 for %s %s from %s: body %s over the %d-byte limit (HIVE_MCP_MAX_BODY_BYTES)",
            scope.get("method"),
            scope.get("path"),
            peer(scope),
            f"of {declared} bytes" if declared is not None else "streamed",
            self.max_body_bytes,
        )
        # Connection: close, so the server reads no further request on this connection.
        await respond(
            send,
            413,
            {"error": f"request body larger than {self.max_body_bytes} bytes"},
            [(b"connection", b"close")],
            more_body=True,
        )

    @property
    def _drain_budget(self) -> int:
        return max(DRAIN_FACTOR * self.max_body_bytes, DRAIN_MIN_BYTES)

    async def _discard(self, scope: Scope, receive: Receive, already: int) -> None:
        """Read and drop the rest of the body, within the drain budget (bytes) and `DRAIN_S` seconds."""
        import anyio

        if (header(scope, b"expect") or b"").lower() == b"100-continue":
            return  # the client waits for our go-ahead, which it will not get: it sends nothing more
        budget, read = self._drain_budget, already
        with anyio.move_on_after(DRAIN_S):
            while read <= budget:
                message = await receive()
                if message.get("type") != "http.request":
                    return
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _user(name: str) -> Any:
    """The caller as the SDK's transports know a principal: each binds a session (streamable HTTP and SSE)
    to the one that opened it, and answers another's request on it as if it did not exist. The name
    stands where the SDK has a token field: the token itself goes no further than this guard."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    return AuthenticatedUser(AccessToken(token=name, client_id=name, scopes=[]))


_CASELESS = (b"host", b"origin")


def _caseless_names(scope: Scope) -> Scope:
    """The scope with its Host and Origin in lower case: a host name and a scheme are the same in any case, and
    the SDK's DNS-rebinding check compares them as written (`hosts.transport_security_settings` lowers its own)."""
    headers = scope.get("headers", ())
    if not any(k in _CASELESS and v != v.lower() for k, v in headers):
        return scope
    return {**scope, "headers": [(k, v.lower() if k in _CASELESS else v) for k, v in headers]}


async def _end(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_plain(send: Send, held: list[Message], request: bytes) -> None:
    """The held 400 (its start and body messages), its JSON-RPC error in one line if the SDK wrote pydantic's
    report there (`jsonrpc.plain_refusal`)."""
    start, answer = held[0], b"".join(m.get("body", b"") for m in held[1:])
    plain = plain_refusal(request, answer)
    if plain is None:
        for message in held:
            await send(message)
        return
    headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", str(len(plain)).encode())]})
    await send({"type": "http.response.body", "body": plain})
