"""The HTTP app as served: the SDK's app inside our layers, run by uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import stopping
from ..asgi import MCP_PATH, MESSAGE_PATH, SSE_PATH, App
from ..net import host_for_url, is_loopback
from ..observe.endpoint import with_metrics
from ..observe.overhead import OverheadHeader
from ..scaling import serves_stateless
from .guard import HttpGuard
from .hosts import transport_security_settings
from .listen import bind
from .messages import MessageChecks
from .sessions import SessionQuota, SseSessionQuota
from .shutdown import Shutdown, let_event_streams_end

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings

    from ..settings import Settings

__all__ = ["BACKSTOP_S", "build_app", "log_access", "log_dashboard", "run_http"]

logger = logging.getLogger("hive_mcp.http")

BACKSTOP_S = 3.0
"""uvicorn cancels whatever is left this long after the grace period (ours acts at the grace period)."""

SDK_BODY_LIMIT = sys.maxsize
"""The SDK's own body limit, set out of reach: `HttpGuard` enforces `HIVE_MCP_MAX_BODY_BYTES`, alone.

The SDK wraps its POST endpoints in `RequestBodyLimitMiddleware` (4 MiB unless
told otherwise, and it cannot be turned off). Left at a real value, it would
be a second limit answering plain text on some paths, and a configured limit
above 4 MiB would still stop at 4 MiB. Nothing larger than our limit reaches it.
"""


def build_app(
    server: Any,
    settings: Settings,
    tokens: tuple[str, ...],
    security: Any = None,
    store: Any = None,
    sources: Any = None,
    tasks: Any = None,
    spend: Any = None,
    conversations: Any = None,
) -> tuple[App, Shutdown]:
    """The ASGI app for `settings.transport` ("http" or "sse"), in our layers, outermost first:

    0. `GET /metrics` (`observe.endpoint`): Prometheus' text format, for the holder of
       `HIVE_MCP_METRICS_TOKEN`, or for loopback clients when it is unset.
    1. `GET /healthz`: 200 `{"status":"ok"}` at once, for load balancers. No
       authentication, no Host check (balancers probe by IP), nothing revealed.
    2. Bearer-token authentication (`HIVE_MCP_AUTH_TOKEN[_FILE]`), when tokens
       are configured: otherwise 401 with `WWW-Authenticate: Bearer`.
    3. The body limit (`HIVE_MCP_MAX_BODY_BYTES`): 413, decided on Content-Length
       before any byte is read, or by counting a chunked body as it streams in.
       (1-3: `HttpGuard`.)
    4. Shutdown tracking (`Shutdown`): after SIGTERM, in-flight calls get the
       grace period to finish, then a JSON-RPC error; idle streams close at once;
       `tasks` (a `TaskEngine`, or None) stops its jobs within the same grace period; once the
       application has stopped, `spend` (the `Spend` ledger, or None) writes the calls settled meanwhile
       and gives back the reservations still held (`Spend.release_all`), and `conversations` (the conversation
       store, or None) closes, giving back the turns this process still holds.
    5. The checks of a POSTed message the SDK would answer wrongly or not at all, and progress tokens with a
       fraction carried past the SDK's models (`messages`).
    6. The per-caller session cap (`sessions`: stateful streamable HTTP, and legacy SSE's event streams).
    7. The SDK's app, with DNS-rebinding protection always on (`hosts`): a bad
       Host gets 421, a bad Origin 403. It binds each session to the caller
       that opened it (the guard names them in `scope["user"]`) and ends it
       after `HIVE_MCP_SESSION_IDLE_S` unused. Its responses' headers wait for their first
       body message, to carry the call's `x-hive-overhead-ms` (`observe.overhead`). Its stateful sessions put
       each message on its request's event stream from the task that sends it (`routing`).

    With a dump `store`, `/dashboard` and below go to the dashboard instead, which
    checks the same tokens itself (a browser cannot send a bearer header when it
    navigates: it signs in once for a cookie), closing the connection after each 401 as the guard does,
    and the same Host/Origin rules;
    `sources` (a `dashboard.Sources`, or `who -> Sources` for one caller's view) fills its spend and models
    sections; `settings.admins` see every caller's dumps and spend there.
    """
    security = security or transport_security_settings(settings)
    if settings.transport == "http":
        from ..sdk_compat import open_session_ids, route_sessions_inline, send_events_with
        from .event_stream import EventStream

        send_events_with(EventStream)
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            host=settings.host,
            transport_security=security,
            max_request_body_size=SDK_BODY_LIMIT,
            stateless_http=serves_stateless(settings),
            session_idle_timeout=settings.session_idle_s,
        )
        if not serves_stateless(settings):
            from .routing import InlineRouter

            route_sessions_inline(server.session_manager, InlineRouter)

            app = SessionQuota(
                app, per_caller=settings.sessions_per_caller, idle_s=settings.session_idle_s,
                open_ids=lambda: open_session_ids(server.session_manager),
            )  # fmt: skip
        app = MessageChecks(app)
    else:
        app = server.sse_app(
            sse_path=SSE_PATH,
            message_path=MESSAGE_PATH,
            host=settings.host,
            transport_security=security,
            max_request_body_size=SDK_BODY_LIMIT,
        )
        app = MessageChecks(SseSessionQuota(app, per_caller=settings.sessions_per_caller))
    shutdown = Shutdown(
        settings.shutdown_grace_s,
        drains=[tasks.stop] if tasks is not None else [],
        closes=[spend.release_all] if spend is not None else [],
        acloses=[conversations.aclose] if conversations is not None else [],
    )
    guard = HttpGuard(shutdown.wrap(OverheadHeader(app)), tokens=tokens, max_body_bytes=settings.max_body_bytes)
    if store is None:
        return with_metrics(guard, settings.metrics_token_value), shutdown
    from mcp.server.transport_security import TransportSecurityMiddleware

    from ..dashboard.data import Sources
    from ..dashboard.sessions import SESSIONS_FILENAME, Sessions
    from ..dashboard.web import dashboard_app, with_dashboard
    from ..home import hive_home

    hosts = TransportSecurityMiddleware(security)
    dashboard = dashboard_app(
        store,
        verify_token=guard.caller_of if guard.enabled else None,
        # GET rules for every method: the dashboard checks a POST's Origin itself, and
        # the SDK's POST rule wants a JSON Content-Type, which a form does not send.
        check_host_origin=lambda request: hosts.validate_request(request, is_post=False),
        sources=sources if sources is not None else Sources(),
        admins=settings.admins,
        sessions=Sessions(hive_home() / SESSIONS_FILENAME),  # shared by the workers: one sign-in, one sign-out
    )
    dashboard = shutdown.wrap(guard.closing_refusals(dashboard))
    return with_metrics(with_dashboard(dashboard, guard), settings.metrics_token_value), shutdown


def run_http(
    server: Any, settings: Settings, tokens: tuple[str, ...], store: Any = None, sources: Any = None,
    listener: socket.socket | None = None, tasks: Any = None, spend: Any = None, conversations: Any = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn catches both), then shut down as `Shutdown` says.

    `listener` is the port bound already (`hive_mcp.http.listen`); without it, it is bound here.
    """
    import anyio
    import uvicorn

    from .door import guard_connections

    listener = listener or bind(settings.host, settings.port)
    security = transport_security_settings(settings)
    app, shutdown = build_app(server, settings, tokens, security, store, sources, tasks, spend, conversations)
    let_event_streams_end(False)

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                stopping.serving()  # uvicorn's handlers are in place; the signal it raises again at the end is ours
                yield

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
    guard_connections(config, settings.header_timeout_s, settings.max_unauthenticated)

    where = f"http://{host_for_url(settings.host)}:{settings.port}"
    if settings.transport == "http":
        logger.info("serving MCP over streamable HTTP at %s%s", where, MCP_PATH)
    else:
        logger.info("serving MCP over HTTP+SSE (legacy) at %s%s", where, SSE_PATH)
    if store is not None:
        log_dashboard(where)
    log_access(settings, tokens, security)
    anyio.run(_Server(config).serve, [listener])


def log_dashboard(where: str) -> None:
    from ..dashboard.web import PREFIX

    logger.info("dashboard at %s%s", where, PREFIX)


def log_access(settings: Settings, tokens: tuple[str, ...], security: TransportSecuritySettings) -> None:
    """Who may call: the token count, or a warning that anyone on the network may; and the accepted Host headers."""
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
            "accepted Host headers: %s (add more with HIVE_MCP_ALLOWED_HOSTS)",
            ", ".join(security.allowed_hosts),
        )
