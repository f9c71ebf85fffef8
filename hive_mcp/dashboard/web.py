"""The dashboard over HTTP: `GET /dashboard` (the page), `GET /dashboard/data` (its JSON), login, delete.

Authentication is the server's bearer token (`verify_token`), taken once through
a login form because a browser cannot send a bearer header when it navigates:
the form's answer is a cookie holding an HMAC-signed session (expiry and nonce,
never the token), `HttpOnly`, `SameSite=Strict`, `Path=/dashboard`, and `Secure`
over https. Scripts may send `Authorization: Bearer` instead. Without
`verify_token` (no tokens configured) everything is served without login.

The page's own script and style (`/dashboard/static/`) are served to anyone:
the sign-in form uses the style, and neither holds data.

Every request first passes `check_host_origin` (the HTTP layer's DNS-rebinding
checks); a POST must also come from this origin (its `Origin` names the `Host`
it was sent to), and a cookie-authenticated POST must carry an `Origin`.
Deleting a dump needs `confirm` set to the dump's id, and is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..dumps import DumpCorrupt, DumpNotFound, DumpStore, is_valid_dump_id
from ..text import one_line
from .assets import ASSETS, asset, page
from .data import QueryError, Sources, build, parse_query

logger = logging.getLogger("hive_mcp.dashboard")

PREFIX = "/dashboard"
COOKIE = "hive_dashboard"
SESSION_TTL_S = 12 * 3600.0
MAX_FORM_BYTES = 4096

HostOriginCheck = Callable[[Request], Awaitable[Response | None]]

_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_COMMON = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
_HTML = {**_COMMON, "content-security-policy": _PAGE_CSP, "x-frame-options": "DENY"}


class Sessions:
    """Signed, expiring session values: `v1.<expiry>.<nonce>.<hmac>`; nothing in them is secret."""

    def __init__(self, key: bytes | None = None, ttl_s: float = SESSION_TTL_S) -> None:
        self._key = key or secrets.token_bytes(32)  # per process unless shared: a restart signs everyone out
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        payload = f"v1.{int((now or time.time()) + self.ttl_s)}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(payload)}"

    def valid(self, value: str | None, now: float | None = None) -> bool:
        if not value or value.count(".") != 3:
            return False
        payload, _, sig = value.rpartition(".")
        if not hmac.compare_digest(sig.encode("utf-8", "replace"), self._sign(payload).encode()):
            return False
        expiry = payload.split(".")[1]
        return expiry.isdigit() and int(expiry) > (now or time.time())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message, 300)}, status_code=status, headers={**_COMMON, **(headers or {})})


def _login_page(status: int, message: str = "") -> HTMLResponse:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hive-mcp dashboard: sign in</title>
<link rel="stylesheet" href="{PREFIX}/static/page.css"></head>
<body><main><h1>hive-mcp dashboard</h1>{note}
<form method="post" action="{PREFIX}/login">
<label>Bearer token (the server's HIVE_MCP_AUTH_TOKEN)
<input type="password" name="token" autocomplete="current-password" required autofocus></label>
<p><button type="submit">Sign in</button></p></form></main></body></html>"""
    return HTMLResponse(body, status_code=status, headers=_HTML)


async def _form(request: Request) -> dict[str, str] | None:
    """A small url-encoded form body, or None when it is larger than MAX_FORM_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    pairs = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in pairs.items()}


def _same_origin(request: Request) -> bool | None:
    """True when Origin names the Host this was sent to, False when it names another, None when absent."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower() and bool(host)


def dashboard_app(
    store: DumpStore,
    *,
    verify_token: Callable[[str], bool] | None,
    check_host_origin: HostOriginCheck | None = None,
    sources: Sources = Sources(),
    session_key: bytes | None = None,
    session_ttl_s: float = SESSION_TTL_S,
) -> Starlette:
    """The dashboard's Starlette app, serving the paths under /dashboard.

    `verify_token(token)` says whether a presented token is valid (None: no
    authentication). `check_host_origin(request)` returns an error response to
    send, or None to go on. `session_key` must be shared by processes that serve
    the same users (default: a random key per app).
    """
    sessions = Sessions(session_key, session_ttl_s)

    def authorized(request: Request) -> str | None:
        """How the request is authenticated: "none" (not required), "bearer", "cookie", or None (it is not)."""
        if verify_token is None:
            return "none"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "bearer" if verify_token(token.strip()) else None
        return "cookie" if sessions.valid(request.cookies.get(COOKIE)) else None

    async def host_refused(request: Request) -> Response | None:
        if check_host_origin is not None:
            refused = await check_host_origin(request)
            if refused is not None:
                return refused
        if request.method == "POST" and _same_origin(request) is False:
            return _error(403, "Origin: a cross-origin request may not change anything here")
        return None

    async def index(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        if authorized(request) is None:
            return _login_page(401)
        return HTMLResponse(page("web", endpoint=f"{PREFIX}/data", static=f"{PREFIX}/static"), headers=_HTML)

    async def static(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        name = request.path_params["name"]
        if name not in ASSETS:
            return _error(404, f"no asset {name!r}")
        return Response(asset(name), media_type=ASSETS[name], headers=_COMMON)

    async def data(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        if authorized(request) is None:
            return _error(401, "unauthorized: sign in at /dashboard or send Authorization: Bearer", {"www-authenticate": 'Bearer realm="hive-mcp"'})
        params = request.query_params
        for key in params:
            if len(params.getlist(key)) > 1:
                return _error(400, f"{key}: given more than once")
        try:
            query = parse_query(dict(params))
            result = await anyio.to_thread.run_sync(lambda: build(store, query, sources=sources))
        except QueryError as exc:
            return _error(400, str(exc))
        except DumpNotFound as exc:
            return _error(404, f"id: {exc}")
        except DumpCorrupt as exc:
            return _error(422, f"id: {exc}")
        return Response(result.model_dump_json(), media_type="application/json", headers=_COMMON)

    async def login(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        if verify_token is None:
            return RedirectResponse(PREFIX, status_code=303)
        form = await _form(request)
        if form is None:
            return _login_page(413, "The form is too large.")
        token = form.get("token", "").strip()
        if not token:
            return _login_page(400, "token: required")
        if not verify_token(token):
            logger.info("dashboard sign-in refused for %s: wrong token", request.client.host if request.client else "?")
            return _login_page(401, "That token is not valid.")
        response = RedirectResponse(PREFIX, status_code=303, headers=_COMMON)
        response.set_cookie(
            COOKIE,
            sessions.issue(),
            max_age=int(session_ttl_s),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        response = RedirectResponse(PREFIX, status_code=303, headers=_COMMON)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    async def delete(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        how = authorized(request)
        if how is None:
            return _error(401, "unauthorized: sign in at /dashboard or send Authorization: Bearer")
        if how == "cookie" and _same_origin(request) is None:
            return _error(403, "Origin: required on a signed-in request that changes something")
        dump_id = request.path_params["dump_id"]
        if not is_valid_dump_id(dump_id):
            return _error(400, "id: not a dump id")
        form = await _form(request)
        if form is None:
            return _error(413, "body: larger than a confirmation form")
        if form.get("confirm") != dump_id:
            return _error(400, "confirm: must be the id of the dump to delete")
        removed = await anyio.to_thread.run_sync(store.delete, dump_id)
        if not removed:
            return _error(404, f"id: no dump {dump_id!r}")
        logger.warning("dashboard: deleted failure dump %s (request from %s)", dump_id, request.client.host if request.client else "?")
        return JSONResponse({"deleted": dump_id}, headers=_COMMON)

    return Starlette(
        routes=[
            Route(PREFIX, index, methods=["GET"]),
            Route(f"{PREFIX}/", index, methods=["GET"]),
            Route(f"{PREFIX}/static/{{name}}", static, methods=["GET"]),
            Route(f"{PREFIX}/data", data, methods=["GET"]),
            Route(f"{PREFIX}/login", login, methods=["POST"]),
            Route(f"{PREFIX}/logout", logout, methods=["POST"]),
            Route(f"{PREFIX}/dumps/{{dump_id}}/delete", delete, methods=["POST"]),
        ]
    )


def with_dashboard(dashboard: ASGIApp, rest: ASGIApp) -> ASGIApp:
    """An ASGI app sending /dashboard and below to `dashboard`, everything else (lifespan too) to `rest`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path: Any = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await dashboard(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app
