"""The dashboard over HTTP: `GET /dashboard` (the page), `GET /dashboard/data` (its JSON), login, delete.

Authentication is the server's bearer token (`verify_token`, which names its
caller), taken once through a login form because a browser cannot send a bearer
header when it navigates: the form's answer is a cookie holding a session
(`sessions.Sessions`: a random value, bound on the server to the caller who
signed in, ended there at sign-out, at most 12 hours), `HttpOnly`,
`SameSite=Strict`, `Path=/dashboard`, and `Secure` whenever the request came
over https (directly, or to a proxy that says so in `X-Forwarded-Proto`).
Scripts may send `Authorization: Bearer` instead. Without `verify_token` (no
tokens configured) everything is served without login, as to the stdio user.
A request refused for its credentials is logged as the HTTP guard logs its own
(`asgi.log_refusal`), and its connection closed as theirs are (the server
wraps this app in `HttpGuard.closing_refusals`).

Every view shows the signed-in caller's own: its dumps (another caller's dump is
not found, as an unknown id is), its spend; admins see everyone's.

The page's own script and style (`/dashboard/static/`) are served to anyone:
the sign-in form uses the style, and neither holds data.

Every request first passes `check_host_origin` (the HTTP layer's DNS-rebinding
checks); a POST must also come from this origin (its `Origin` names the `Host`
it was sent to), and a cookie-authenticated POST must carry an `Origin`. The
pages are served with `Referrer-Policy: same-origin`: under `no-referrer` a
browser sends `Origin: null` with the page's own form, which reads as foreign.
Deleting a dump needs `confirm` set to the dump's id, and is logged.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..dumps import CallerDumps, DumpCorrupt, DumpNotFound, DumpStore, is_valid_dump_id
from ..asgi import log_refusal
from ..text import one_line
from ..tokens import LOCAL_CALLER, owner_scope
from .assets import ASSETS, asset, page
from .data import QueryError, Sources, build, parse_query
from .sessions import Sessions, SessionsUnavailable

logger = logging.getLogger("hive_mcp.dashboard")

PREFIX = "/dashboard"
COOKIE = "hive_dashboard"
MAX_FORM_BYTES = 4096

HostOriginCheck = Callable[[Request], Awaitable[Response | None]]

_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_COMMON = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}
_HTML = {**_COMMON, "content-security-policy": _PAGE_CSP, "x-frame-options": "DENY"}


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


def _over_https(request: Request) -> bool:
    """Whether the browser reached us over https: directly, or through a proxy that says so. The header is
    believed from anyone: all it can do is make the cookie stricter."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def dashboard_app(
    store: DumpStore,
    *,
    verify_token: Callable[[str], str | None] | None,
    check_host_origin: HostOriginCheck | None = None,
    sources: Sources | Callable[[str | None], Sources] = Sources(),
    admins: Iterable[str] = (),
    sessions: Sessions | None = None,
) -> Starlette:
    """The dashboard's Starlette app, serving the paths under /dashboard.

    `verify_token(token)` names the caller a presented token belongs to, or None
    when it is no token (None: no authentication, everyone is the local user).
    `check_host_origin(request)` returns an error response to send, or None to
    go on. `sources(who)` fills the spend and models sections for `who` (a
    caller's name, None for everyone's); a plain `Sources` serves everyone the
    same. `admins` see every caller's dumps and spend. `sessions` must be shared
    by the processes that serve the same users (default: this app's own).
    """
    sessions = sessions if sessions is not None else Sessions()
    admins = frozenset(admins)
    sources_for = sources if callable(sources) else (lambda _who: sources)

    async def authorized(request: Request) -> tuple[str, str] | None:
        """(how, caller): how the request is authenticated ("none" when it need not be, "bearer", "cookie")
        and who the caller is; None when it is not authenticated (logged as the HTTP guard logs its refusals)."""
        if verify_token is None:
            return "none", LOCAL_CALLER
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            name = verify_token(token.strip())
            if name is None:
                log_refusal(request.scope, "invalid bearer token")
            return ("bearer", name) if name is not None else None
        cookie = request.cookies.get(COOKIE)
        try:
            name = await anyio.to_thread.run_sync(sessions.caller, cookie)  # a file, maybe
        except SessionsUnavailable:  # told in the log once; a sign-in then says why it cannot be had
            return None
        if name is None:
            log_refusal(request.scope, "invalid session cookie" if cookie else "no bearer token or session cookie")
        return ("cookie", name) if name is not None else None

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
        auth = await authorized(request)
        if auth is None:
            return _login_page(401)
        signout = f"{PREFIX}/logout" if auth[0] == "cookie" else None
        return HTMLResponse(page("web", endpoint=f"{PREFIX}/data", static=f"{PREFIX}/static", signout=signout), headers=_HTML)

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
        auth = await authorized(request)
        if auth is None:
            return _error(401, "unauthorized: sign in at /dashboard or send Authorization: Bearer", {"www-authenticate": 'Bearer realm="hive-mcp"'})
        params = request.query_params
        for key in params:
            if len(params.getlist(key)) > 1:
                return _error(400, f"{key}: given more than once")
        who = owner_scope(auth[1], admins)
        try:
            query = parse_query(dict(params))
            dumps = CallerDumps(store, who)
            result = await anyio.to_thread.run_sync(lambda: build(dumps, query, sources=sources_for(who)))
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
        name = verify_token(token)
        if name is None:
            log_refusal(request.scope, "invalid token in the sign-in form")
            return _login_page(401, "That token is not valid.")
        try:
            value = await anyio.to_thread.run_sync(sessions.issue, name)
        except SessionsUnavailable as exc:
            return _login_page(503, f"Sign-in is unavailable: {exc}. Try again shortly.")
        response = RedirectResponse(PREFIX, status_code=303, headers=_COMMON)
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(sessions.ttl_s),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=_over_https(request),
        )
        return response

    async def logout(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        try:
            await anyio.to_thread.run_sync(sessions.end, request.cookies.get(COOKIE))  # the old cookie is void
            response: Response = RedirectResponse(PREFIX, status_code=303, headers=_COMMON)
        except SessionsUnavailable as exc:  # void in this process already; on the others with the next write
            response = _login_page(503, f"Signed out in this browser; the session is not ended everywhere yet: {exc}.")
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    async def delete(request: Request) -> Response:
        if refused := await host_refused(request):
            return refused
        auth = await authorized(request)
        if auth is None:
            return _error(401, "unauthorized: sign in at /dashboard or send Authorization: Bearer")
        if auth[0] == "cookie" and _same_origin(request) is None:
            return _error(403, "Origin: required on a signed-in request that changes something")
        dump_id = request.path_params["dump_id"]
        if not is_valid_dump_id(dump_id):
            return _error(400, "id: not a dump id")
        form = await _form(request)
        if form is None:
            return _error(413, "body: larger than a confirmation form")
        if form.get("confirm") != dump_id:
            return _error(400, "confirm: must be the id of the dump to delete")
        removed = await anyio.to_thread.run_sync(CallerDumps(store, owner_scope(auth[1], admins)).delete, dump_id)
        if not removed:
            return _error(404, f"id: no dump {dump_id!r}")
        logger.warning(
            "dashboard: %s deleted failure dump %s (request from %s)",
            auth[1], dump_id, request.client.host if request.client else "?",
        )  # fmt: skip
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
