"""`GET /metrics`: the metrics in Prometheus' text format, for whoever holds `HIVE_MCP_METRICS_TOKEN`, or, with no
such token configured, for loopback clients only. Served in front of the HTTP transport (its own token, not the
MCP bearer tokens), or on a port of its own (`--metrics-port`, for stdio deployments)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..asgi import App, Receive, Scope, Send, header, respond
from ..net import host_for_url, host_name, is_loopback
from . import metrics

__all__ = ["METRICS_PATH", "exposition", "metrics_app", "refusal", "serve_metrics", "with_metrics"]

logger = logging.getLogger("hive_mcp.observe")

METRICS_PATH = "/metrics"
TOKEN_ENV = "HIVE_MCP_METRICS_TOKEN"
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
"""What `generate_latest` writes, and what every Prometheus server reads."""
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
"""Headers a reverse proxy adds for the client it relays: a request carrying one is not its loopback peer's."""


def refusal(
    peer_host: str | None, headers: Callable[[bytes], bytes | None], token: str | None
) -> tuple[int, str] | None:
    """Why a scrape is refused (status and one line), or None; `headers(name)` reads the request's header. With
    `token`, every scrape must bring it (compared by digest in constant time). Without one, only a loopback
    client may scrape: a loopback peer that names a loopback Host (a page whose name was re-pointed at
    127.0.0.1 names its own) and relays no one (a reverse proxy on this host says whom it forwards)."""
    if token is not None:
        authorization = headers(b"authorization")
        sent = authorization[7:] if authorization and authorization[:7].lower() == b"bearer " else b""
        if not hmac.compare_digest(hashlib.sha256(sent).digest(), hashlib.sha256(token.encode()).digest()):
            return 401, f"metrics: send Authorization: Bearer <{TOKEN_ENV}>"
        return None
    host = (headers(b"host") or b"").decode("latin-1")
    if (
        peer_host is None or not is_loopback(peer_host) or not is_loopback(host_name(host))
        or any(headers(name) is not None for name in FORWARDING_HEADERS)
    ):
        return 403, f"metrics: only loopback clients may scrape unless {TOKEN_ENV} is set"
    return None


def exposition() -> tuple[int, bytes, str]:
    """Status, body and content type of a scrape: every worker's values when they share a multiprocess directory."""
    if not metrics.enabled():
        return 501, b"metrics need prometheus-client: pip install 'hive-mcp[metrics]'\n", "text/plain; charset=utf-8"
    import prometheus_client as prom

    registry = prom.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return 200, prom.generate_latest(registry), TEXT_FORMAT


def metrics_app(token: str | None) -> App:
    """An ASGI app answering `GET`/`HEAD` on any path with the metrics, guarded by `refusal`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await respond(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET, HEAD")])
            return
        client = scope.get("client")
        refused = refusal(client[0] if client else None, lambda name: header(scope, name), token)
        if refused is not None:
            extra = [(b"www-authenticate", b'Bearer realm="metrics"')] if refused[0] == 401 else []
            await respond(send, refused[0], {"error": refused[1]}, extra)
            return
        status, body, content_type = exposition()
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return app


def with_metrics(rest: App, token: str | None) -> App:
    """`rest`, with `/metrics` answered in front of it (before its bearer tokens, Host checks and body limit)."""
    scrape = metrics_app(token)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and scope.get("path") == METRICS_PATH:
            await scrape(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app


def serve_metrics(listener: socket.socket, token: str | None) -> ThreadingHTTPServer:
    """`/metrics` on `listener` (bound, not yet listening: `http.listen.bind`, at start-up, so a port in use is
    one line before anything starts) in a thread of its own (stdio has no HTTP server to put it on); returns
    the server, already serving (`shutdown()` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.split("?")[0] != METRICS_PATH:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
                return
            def read(name: bytes) -> bytes | None:
                value = self.headers.get(name.decode())
                return None if value is None else value.encode("latin-1")

            refused = refusal(self.client_address[0], read, token)
            if refused is not None:
                self._send(refused[0], f"{refused[1]}\n".encode(), "text/plain; charset=utf-8")
                return
            self._send(*exposition())

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdout belongs to stdio
            logger.debug("metrics: " + format, *args)

    host, port = listener.getsockname()[:2]
    server = ThreadingHTTPServer((host, port), Handler, bind_and_activate=False)
    server.socket.close()  # the one it made, unbound: it serves the one bound at start-up
    server.socket = listener
    server.server_activate()
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="hive-mcp-metrics", daemon=True).start()
    logger.info("metrics at http://%s:%d%s", host_for_url(host), port, METRICS_PATH)
    return server
