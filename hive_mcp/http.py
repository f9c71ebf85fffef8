"""The HTTP surface (`--transport http|sse`): what stands between the network and the SDK's app.

Every request passes, outermost first:

1. `GET /healthz`: 200 `{"status":"ok"}` at once, for load balancers. No
   authentication, no Host check (balancers probe by IP), nothing revealed.
2. Bearer-token authentication (`HIVE_MCP_AUTH_TOKEN[_FILE]`), when tokens are
   configured: otherwise 401 with `WWW-Authenticate: Bearer`. See `HttpGuard`.
3. The body limit (`HIVE_MCP_MAX_BODY_BYTES`): 413, decided on Content-Length
   before any byte is read, or by counting a chunked body as it streams in.
4. Shutdown tracking (`Shutdown`): after SIGTERM, in-flight calls get the grace
   period to finish, then a JSON-RPC error; idle streams close at once. Every
   response also ends exactly once (see `_Exchange`).
5. The SDK's app, with DNS-rebinding protection always on
   (`TransportSecuritySettings`): a bad Host gets 421, a bad Origin 403.

uvicorn serves it, its logs going through our stderr handler at our level.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .settings import Settings

__all__ = ["HEALTH_PATH", "HttpGuard", "Shutdown", "run_http", "transport_security_settings"]

logger = logging.getLogger("hive_mcp.http")

HEALTH_PATH = "/healthz"
MCP_PATH = "/mcp"  # streamable HTTP
SSE_PATH = "/sse"  # legacy HTTP+SSE: the event stream ...
MESSAGE_PATH = "/messages/"  # ... and where clients POST
BACKSTOP_S = 3.0
"""uvicorn cancels whatever is left this long after the grace period (ours acts at the grace period)."""
SHUTDOWN_ERROR_CODE = -32000  # JSON-RPC "server error" range

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
App = Callable[[Scope, Receive, Send], Any]


# ---------------------------------------------------------------------------
# DNS-rebinding protection
# ---------------------------------------------------------------------------

_LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
_LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
_WILDCARDS = ("0.0.0.0", "::", "[::]", "")


def transport_security_settings(settings: Settings) -> Any:
    """The SDK's Host/Origin checks, always on.

    Loopback names are always accepted (the SDK's own default for a loopback
    bind); a non-loopback bind adds its own `host:port` (for 0.0.0.0 or ::, the
    machine's name and addresses); `HIVE_MCP_ALLOWED_HOSTS` / `--allowed-host`
    and `HIVE_MCP_ALLOWED_ORIGINS` / `--allowed-origin` add more. A host given
    without a port matches any port; `name:*` does too.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    from .serve import host_for_url, is_loopback

    hosts, origins = list(_LOOPBACK_HOSTS), list(_LOOPBACK_ORIGINS)
    if not is_loopback(settings.host):
        names = _local_names() if settings.host in _WILDCARDS else [settings.host]
        for name in names:
            bound = f"{host_for_url(name)}:{settings.port}"
            hosts.append(bound)
            origins += [f"http://{bound}", f"https://{bound}"]
    for entry in settings.allowed_hosts:
        hosts += _host_patterns(entry)
    origins += [o.rstrip("/") for o in settings.allowed_origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def _host_patterns(entry: str) -> list[str]:
    """`example.com` -> itself and `example.com:*`; `example.com:8443` and `name:*` as they are."""
    has_port = ("]:" in entry) if entry.startswith("[") else entry.count(":") == 1
    if not entry.startswith("[") and entry.count(":") > 1:  # a bare IPv6 address
        entry = f"[{entry}]"
    return [entry] if has_port else [entry, f"{entry}:*"]


def _local_names() -> list[str]:
    """What clients may call this machine when it listens on every address: its names and addresses."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        names += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)]
    except OSError:
        pass
    names += _interface_addresses()
    return [n for n in dict.fromkeys(names) if n and "%" not in n]  # a scoped (link-local) address is no Host


def _interface_addresses() -> list[str]:
    """The addresses of this machine's network interfaces, as far as the standard library can tell (best effort)."""
    found: list[str] = []
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:  # the address outgoing traffic would leave from: connect() on UDP sends nothing
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                found.append(str(s.getsockname()[0]))
        except OSError:
            pass
    try:  # Linux: every interface's IPv4 address (SIOCGIFADDR) ...
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address
                found.append(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError, AttributeError):
        pass
    try:  # ... and IPv6 ones, but link-local
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 4 and fields[3] != "20":
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    except (OSError, ValueError):
        pass
    return found


# ---------------------------------------------------------------------------
# Health, authentication, body limit
# ---------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


async def _respond(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = (), *, head: bool = False
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else payload, "more_body": False})


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
    """

    def __init__(self, app: App, *, tokens: Iterable[str], max_body_bytes: int) -> None:
        self.app = app
        self._digests = tuple(hashlib.sha256(t.encode()).digest() for t in tokens)
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
        method = scope.get("method", "GET")
        if scope.get("path") == HEALTH_PATH:
            if method in ("GET", "HEAD"):
                await _respond(send, 200, {"status": "ok"}, head=method == "HEAD")
            else:
                await _respond(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET, HEAD")])
            return
        if self._digests:
            scope = await self._authenticate(scope, send)
            if not scope:
                return
        await self._limit_body(scope, receive, send)

    # -- authentication --------------------------------------------------------------

    def _verify(self, presented: bytes) -> bool:
        digest = hashlib.sha256(presented).digest()
        ok = False
        for known in self._digests:  # every token, no early exit
            ok |= hmac.compare_digest(digest, known)
        return ok

    async def _authenticate(self, scope: Scope, send: Send) -> Scope | None:
        """The scope without its Authorization header if the request carries a valid token; else answer 401."""
        value = _header(scope, b"authorization")
        presented = False
        if value is not None:
            scheme, _, credentials = value.strip().partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() == b"bearer" and credentials:
                presented = True
                if self._verify(credentials):
                    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"authorization"]
                    return {**scope, "headers": headers}
        logger.debug(
            "401 for %s %s from %s: %s",
            scope.get("method"),
            scope.get("path"),
            _client(scope),
            "invalid bearer token" if presented else "no bearer token",
        )
        challenge = b'Bearer realm="hive-mcp"'
        if presented:
            challenge += b', error="invalid_token"'
        await _respond(
            send,
            401,
            {"error": "unauthorized", "error_description": "a valid bearer token is required (Authorization: Bearer)"},
            [(b"www-authenticate", challenge), (b"connection", b"close")],
        )
        return None

    # -- body limit ------------------------------------------------------------------

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio
        import anyio.lowlevel

        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _respond(send, 400, {"error": "invalid Content-Length"}, [(b"connection", b"close")])
                return
            if size > limit:
                await self._too_large(scope, send, size)
                return

        received = 0
        rejected = False
        started = False
        app_scope = anyio.CancelScope()

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    rejected = True
                    if not started:
                        await self._too_large(scope, send, None)
                    # Stop the app where it stands, reading the body: a cancellation, which
                    # it does not take for an error to log (as it would a disconnect).
                    app_scope.cancel()
                    await anyio.lowlevel.checkpoint()
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # we answered 413 already; the app's reply goes nowhere
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        with app_scope:
            await self.app(scope, counting_receive, guarded_send)

    async def _too_large(self, scope: Scope, send: Send, declared: int | None) -> None:
        logger.info(
            "413 for %s %s from %s: body %s over the %d-byte limit (HIVE_MCP_MAX_BODY_BYTES)",
            scope.get("method"),
            scope.get("path"),
            _client(scope),
            f"of {declared} bytes" if declared is not None else "streamed",
            self.max_body_bytes,
        )
        # Connection: close, so the server stops reading what the client still sends.
        await _respond(
            send,
            413,
            {"error": f"request body larger than {self.max_body_bytes} bytes"},
            [(b"connection", b"close")],
        )


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


# ---------------------------------------------------------------------------
# Shutdown: a grace period for calls in flight
# ---------------------------------------------------------------------------


class Shutdown:
    """What happens to open requests when the server is told to stop (SIGTERM, Ctrl-C).

    uvicorn stops accepting connections and waits for open responses. Left at
    that, streams that never end on their own (streamable HTTP's standing GET,
    an idle legacy SSE stream) would hold the process for the whole grace period,
    and calls still running at its end would be cut off with no answer. So, as
    shutdown begins (`begin`):

    - standing streams that carry no answers end at once;
    - a legacy SSE stream ends as soon as every call posted for its session has
      been answered on it;
    - call responses in flight continue.

    When the grace period is over (`expire`), each call still unanswered gets a
    JSON-RPC error saying the server shut down, on the stream its answer was due
    on, and that stream ends. The calls themselves are then cancelled with the
    server (which closes their upstream connections).

    To know which calls are unanswered, `_Exchange` reads the JSON-RPC ids of the
    requests POSTed and watches the answers on the way out.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.draining = False
        self.expired = False
        self.exchanges: set[_Exchange] = set()
        self.pending: dict[str, set[Any]] = {}
        """Legacy SSE: session id -> ids of requests POSTed to /messages/ and not yet answered on /sse."""
        self._timer: asyncio.TimerHandle | None = None

    def wrap(self, app: App) -> App:
        async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            await _Exchange(self, scope).run(app, receive, send)

        return tracked

    def begin(self) -> None:
        """Shutdown has begun: end idle streams; give the rest `grace_s`."""
        if self.draining:
            return
        self.draining = True
        busy = self.calls_in_flight()
        logger.info("shutting down: %d call(s) in flight get up to %g s to finish", busy, self.grace_s)
        for ex in list(self.exchanges):
            ex.drain()
        self._timer = asyncio.get_running_loop().call_later(self.grace_s, self.expire)

    def expire(self) -> None:
        """The grace period is over: answer what is left with an error and end every stream."""
        self.expired = True
        _let_event_streams_end(True)
        left = self.calls_in_flight()
        if left:
            logger.warning("shutdown grace period (%g s) over: %d call(s) answered with an error", self.grace_s, left)
        for ex in list(self.exchanges):
            ex.stop()

    def calls_in_flight(self) -> int:
        return sum(len(ex.unanswered()) for ex in self.exchanges if not ex.complete)

    def error_for(self, request_id: Any) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {
                "code": SHUTDOWN_ERROR_CODE,
                "message": f"hive-mcp shut down: the call did not finish within the {self.grace_s:g} s shutdown "
                "grace period (HIVE_MCP_SHUTDOWN_GRACE_S); retry it",
            },
        }


def _request_ids(body: bytes) -> list[Any]:
    """The ids of the JSON-RPC requests in a POST body (none for notifications, responses or bad JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    return [m["id"] for m in items if isinstance(m, dict) and "method" in m and _is_id(m.get("id"))]


def _is_id(value: Any) -> bool:
    """A JSON-RPC id we track (a string or an integer; anything else is not answered by a well-behaved server)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _answered_id(data: bytes) -> tuple[bool, Any]:
    """(True, id) if an SSE event's data is a JSON-RPC response."""
    if b'"result"' not in data and b'"error"' not in data:
        return False, None
    try:
        message = json.loads(data)
    except ValueError:
        return False, None
    if isinstance(message, dict) and _is_id(message.get("id")) and ("result" in message or "error" in message):
        return True, message["id"]
    return False, None


class _Exchange:
    """One HTTP request and its response, as the app handles it.

    Keeps track of what `Shutdown` needs (the calls the request carries and
    whether they were answered), runs the app in a cancel scope so shutdown can
    end it, and makes the response end properly, exactly once: at shutdown the
    SDK's event streams end without the final body message (uvicorn logged "ASGI
    callable returned without completing response"), and the SSE endpoint then
    returned a second, empty response (uvicorn raised "Expected ASGI message
    'http.response.body'", with a traceback). Here a second response is dropped
    and a response left open is ended, so the client sees its stream close. An
    error the app raises once its response is complete is logged at DEBUG only.
    """

    def __init__(self, shutdown: Shutdown, scope: Scope) -> None:
        self.shutdown = shutdown
        self.scope = scope
        method, path = scope.get("method", ""), scope.get("path", "")
        if method == "GET" and path == MCP_PATH:
            self.kind = "standing"  # streamable HTTP's server-to-client stream: no answers to calls
        elif method == "POST" and path == MCP_PATH:
            self.kind = "post"  # answers come back on this response
        elif method == "GET" and path == SSE_PATH:
            self.kind = "sse"  # answers to the session's POSTs come back here
        elif method == "POST" and path.startswith(MESSAGE_PATH):
            self.kind = "message"  # accepted with 202; answered on the session's /sse stream
        else:
            self.kind = "other"
        self.session: str | None = None
        if self.kind == "message":
            self.session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id") or [None])[0]
        self.calls: set[Any] = set()  # "post": ids of this request's calls not yet answered
        self._message_ids: list[Any] = []  # "message": ids of the calls posted
        self.cancel_scope: Any = None
        self.started = self.complete = False
        self.status = 0
        self.event_stream = False
        self._body = bytearray()
        self._events = bytearray()
        self._send: Send | None = None

    # -- what shutdown asks ------------------------------------------------------------

    def unanswered(self) -> set[Any]:
        if self.kind == "post":
            return self.calls
        if self.kind == "sse" and self.session is not None:
            return self.shutdown.pending.get(self.session, set())
        return set()

    def owes_answers(self) -> bool:
        return bool(self.unanswered()) and not self.complete

    def drain(self) -> None:
        if self.kind == "standing" or (self.kind == "sse" and not self.owes_answers()):
            self._cancel()

    def stop(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    # -- the request ---------------------------------------------------------------------

    async def run(self, app: App, receive: Receive, send: Send) -> None:
        import anyio

        self._send = send
        self.shutdown.exchanges.add(self)
        try:
            with anyio.CancelScope() as self.cancel_scope:
                if self.shutdown.draining and self.kind in ("standing", "sse"):
                    self.cancel_scope.cancel()  # a stream opened after shutdown began: end it at once
                await app(self.scope, self._receive(receive), self._send_once)
        except Exception as exc:
            if not self.complete:
                raise
            # The client has its whole answer. The SDK's /sse endpoint raises ValueError after
            # answering a bad Host or Origin with 421/403, which uvicorn logged with a traceback.
            logger.debug("%s %s: %r after the response was sent", self.scope.get("method"), self.scope.get("path"), exc)
        finally:
            self.shutdown.exchanges.discard(self)
            with anyio.CancelScope(shield=True):
                await self._finish()

    def _receive(self, receive: Receive) -> Receive:
        if self.kind not in ("post", "message"):
            return receive

        async def capture() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                self._body += message.get("body", b"")
                if not message.get("more_body", False):
                    ids = _request_ids(bytes(self._body))
                    self._body = bytearray()
                    if self.kind == "post":
                        self.calls.update(ids)
                    else:
                        self._message_ids = ids
            return message

        return capture

    async def _send_once(self, message: Message) -> None:
        assert self._send is not None
        kind = message.get("type")
        if kind == "http.response.start":
            if self.started:
                return  # a second response to the same request
            self.started = True
            self.status = int(message.get("status", 0))
            content_type = next((v for k, v in message.get("headers", ()) if k.lower() == b"content-type"), b"")
            self.event_stream = content_type.lower().startswith(b"text/event-stream")
            if self.kind == "message" and self.status == 202 and self.session:
                self.shutdown.pending.setdefault(self.session, set()).update(self._message_ids)
        elif kind == "http.response.body":
            if self.complete or not self.started:
                return
            if self.event_stream and self.kind in ("post", "sse"):
                self._watch(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)
        if self.shutdown.draining and self.kind == "sse" and not self.owes_answers():
            self._cancel()  # every call of this session answered: the stream can end

    def _watch(self, chunk: bytes) -> None:
        """Note the answers (and, on /sse, the session id) in outgoing SSE events."""
        self._events += chunk.replace(b"\r\n", b"\n")
        while (end := self._events.find(b"\n\n")) >= 0:
            event, self._events = bytes(self._events[:end]), self._events[end + 2 :]
            lines = event.split(b"\n")
            data = b"\n".join(line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:"))
            if self.kind == "sse" and self.session is None and b"event: endpoint" in lines:
                query = urlsplit(data.decode("latin-1")).query
                self.session = (parse_qs(query).get("session_id") or [None])[0]
                continue
            answered, request_id = _answered_id(data)
            if answered:
                self.unanswered().discard(request_id)

    async def _finish(self) -> None:
        """After the app: answer calls left unanswered at the end of the grace period; end the response."""
        assert self._send is not None
        if self.kind == "sse" and self.session is not None:
            owed = self.shutdown.pending.pop(self.session, set())
        else:
            owed = set(self.calls) if self.kind == "post" else set()
        try:
            if owed and self.shutdown.expired and not self.complete:
                errors = [self.shutdown.error_for(i) for i in sorted(owed, key=str)]
                if not self.started:
                    body = errors[0] if len(errors) == 1 else errors
                    await _respond(self._send, 200, body)
                    self.started = self.complete = True
                    return
                if self.event_stream:
                    for error in errors:
                        data = json.dumps(error, separators=(",", ":")).encode()
                        await self._send(
                            {"type": "http.response.body", "body": b"event: message\ndata: " + data + b"\n\n",
                             "more_body": True}
                        )
            if self.started and not self.complete:
                self.complete = True
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client is already gone
            pass


def _let_event_streams_end(now: bool) -> None:
    """Whether sse-starlette (the SDK's event streams) ends every stream as soon as shutdown begins.

    By default it does, within half a second of SIGTERM: every call in flight
    over streamable HTTP would lose its answer. `Shutdown` decides instead, so
    this is turned off while serving and on again when the grace period ends.
    """
    try:
        from sse_starlette.sse import AppStatus
    except ImportError:  # an SDK without sse-starlette: nothing to coordinate with
        return
    if now:
        AppStatus.should_exit = True
    else:
        AppStatus.disable_automatic_graceful_drain()


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------


def build_app(server: Any, settings: Settings, tokens: tuple[str, ...], security: Any = None) -> tuple[App, Shutdown]:
    """The ASGI app for `settings.transport` ("http" or "sse"), wrapped as the module docstring says."""
    security = security or transport_security_settings(settings)
    if settings.transport == "http":
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            host=settings.host,
            transport_security=security,
            max_request_body_size=settings.max_body_bytes,
        )
    else:
        app = server.sse_app(
            sse_path=SSE_PATH,
            message_path=MESSAGE_PATH,
            host=settings.host,
            transport_security=security,
            max_request_body_size=settings.max_body_bytes,
        )
    shutdown = Shutdown(settings.shutdown_grace_s)
    guard = HttpGuard(shutdown.wrap(app), tokens=tokens, max_body_bytes=settings.max_body_bytes)
    return guard, shutdown


def run_http(server: Any, settings: Settings, tokens: tuple[str, ...]) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn catches both), then shut down as `Shutdown` says."""
    import anyio
    import uvicorn

    from .serve import host_for_url, is_loopback

    security = transport_security_settings(settings)
    app, shutdown = build_app(server, settings, tokens, security)
    _let_event_streams_end(False)

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            shutdown.begin()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # propagate to the root logger: stderr, our format
        log_level=settings.log_level.lower(),
        server_header=False,  # say nothing about what serves
        timeout_graceful_shutdown=settings.shutdown_grace_s + BACKSTOP_S,
    )

    where = f"http://{host_for_url(settings.host)}:{settings.port}"
    if settings.transport == "http":
        logger.info("serving MCP over streamable HTTP at %s%s", where, MCP_PATH)
    else:
        logger.info("serving MCP over HTTP+SSE (legacy) at %s%s", where, SSE_PATH)
    if tokens:
        logger.info("bearer-token authentication on (%d token%s)", len(tokens), "" if len(tokens) == 1 else "s")
    elif not is_loopback(settings.host):
        logger.warning(
            "listening on %s without authentication (--allow-unauthenticated): anyone who can reach this port "
            "can spend your API key",
            settings.host,
        )
    if not is_loopback(settings.host) or settings.allowed_hosts:
        logger.info(
            "accepted Host headers: %s (add more with HIVE_MCP_ALLOWED_HOSTS)", ", ".join(security.allowed_hosts)
        )
    anyio.run(_Server(config).serve)
