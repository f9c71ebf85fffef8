"""The dashboard's HTTP surface (through httpx's ASGI transport) and its MCP App (through the SDK's real Client)."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from hive_mcp.dashboard import Sources
from hive_mcp.dashboard.app import RESOURCE_URI, read_ui_resource, ui_resource

from hive_mcp.provider import DeferredProvider
from hive_mcp.dashboard.data import CATEGORIES as KNOWN_CATEGORIES
from hive_mcp.dashboard.sessions import Sessions
from hive_mcp.dashboard.web import COOKIE, dashboard_app
from hive_mcp.dumps import DumpNotFound, DumpStore, DumpSummary
from tests.dashboard_dumps import BASE, DASHBOARD_TOOL, ORIGIN, TOKEN, failure, sign_in, verify, write_mixed
from tests.clients import mcp_server



@pytest.fixture
async def web(store: DumpStore) -> AsyncIterator[httpx.AsyncClient]:
    app = dashboard_app(store, verify_token=verify)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


def everything(store: DumpStore, **filters: Any) -> list[DumpSummary]:
    """The store's own listing, paged to the end: what list_failed_requests would show."""
    items: list[DumpSummary] = []
    cursor = None
    while True:
        page = store.list(limit=200, cursor=cursor, **filters)
        items += page.items
        if (cursor := page.next_cursor) is None:
            return items


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------


async def test_without_auth_the_data_is_401_and_the_page_is_a_login_form(web: httpx.AsyncClient) -> None:
    r = await web.get("/dashboard/data")
    assert r.status_code == 401
    assert r.json()["error"].startswith("unauthorized")
    page = await web.get("/dashboard")
    assert page.status_code == 401
    assert '<form method="post" action="/dashboard/login">' in page.text
    assert 'name="token"' in page.text and "data-mode" not in page.text  # the dashboard itself is not served


async def test_login_sets_a_signed_httponly_strict_cookie_that_grants_access(web: httpx.AsyncClient) -> None:
    r = await sign_in(web)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/dashboard" in attrs
    assert "secure" not in attrs  # plain http here; see the https test
    value = cookie.split(";")[0].split("=", 1)[1]
    assert TOKEN not in value and re.fullmatch(r"[A-Za-z0-9_-]{43}", value)  # 32 random bytes, nothing else
    data = await web.get("/dashboard/data")
    assert data.status_code == 200 and data.json()["view"] == "failures"
    page = await web.get("/dashboard")
    assert page.status_code == 200 and 'data-mode="web"' in page.text


async def test_the_cookie_is_secure_over_https(store: DumpStore) -> None:
    app = dashboard_app(store, verify_token=verify)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://dash.example") as client:
        r = await client.post("/dashboard/login", data={"token": TOKEN}, headers={"origin": "https://dash.example"})
    assert "secure" in [a.strip().lower() for a in r.headers["set-cookie"].split(";")]


async def test_the_cookie_is_secure_when_a_proxy_says_the_browser_came_over_https(store: DumpStore) -> None:
    app = dashboard_app(store, verify_token=verify)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        r = await client.post(
            "/dashboard/login", data={"token": TOKEN}, headers={**ORIGIN, "x-forwarded-proto": "https"}
        )
    assert r.status_code == 303 and "secure" in [a.strip().lower() for a in r.headers["set-cookie"].split(";")]


async def test_the_pages_let_the_browser_send_their_own_origin(web: httpx.AsyncClient) -> None:
    """Under `no-referrer` a browser sends `Origin: null` with the sign-in form: the policy must be same-origin,
    while a foreign or a null Origin is still refused."""
    for r in (await web.get("/dashboard"), await web.get("/dashboard/data")):
        assert r.headers["referrer-policy"] == "same-origin"
    for origin in ("null", "http://evil.example"):
        r = await web.post("/dashboard/login", data={"token": TOKEN}, headers={"origin": origin})
        assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_session_names_its_caller_ends_when_told_and_lasts_at_most_12_hours(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most 43200"):
        Sessions(ttl_s=12 * 3600 + 1)
    one, other = Sessions(tmp_path / "sessions.sqlite3"), Sessions(tmp_path / "sessions.sqlite3")  # two workers
    bob = one.issue("bob", now=1000.0)
    assert other.caller(bob, now=1000.0) == "bob" and other.caller(bob, now=1000.0 + 12 * 3600) is None
    alice = other.issue("alice", now=1500.0)
    assert one.caller(alice, now=1500.0) == "alice"
    one.end(alice)
    assert other.caller(alice, now=1500.0) is None and one.caller(bob, now=2000.0) == "bob"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("sessions.sqlite3*"))  # the WAL too
    assert b"bob" in stored and bob.encode() not in stored  # digests only: nothing a reader could present


async def test_a_wrong_token_or_a_forged_cookie_is_refused(web: httpx.AsyncClient) -> None:
    r = await web.post("/dashboard/login", data={"token": "not-the-token"}, headers=ORIGIN)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert (await web.get("/dashboard/data", headers={"authorization": "Bearer wrong"})).status_code == 401
    await sign_in(web)
    good = web.cookies[COOKIE]
    forged = good[:-1] + ("A" if good[-1] != "A" else "B")  # one character off: no session of that value
    web.cookies.clear()
    web.cookies.set(COOKIE, forged)
    assert (await web.get("/dashboard/data")).status_code == 401


async def test_a_bearer_header_grants_access_without_a_cookie(web: httpx.AsyncClient) -> None:
    r = await web.get("/dashboard/data", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


async def test_without_verify_token_everything_is_served_without_login(store: DumpStore) -> None:
    app = dashboard_app(store, verify_token=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await client.get("/dashboard")).status_code == 200
        assert (await client.get("/dashboard/data")).status_code == 200


# ---------------------------------------------------------------------------
# Host and Origin
# ---------------------------------------------------------------------------


async def test_the_host_origin_hook_sees_every_request_and_its_refusal_is_sent(store: DumpStore) -> None:
    seen: list[str] = []

    async def check(request: Request) -> Response | None:
        seen.append(request.url.path)
        if request.headers.get("host") != "127.0.0.1:8000":
            return PlainTextResponse("Invalid Host header", status_code=421)
        return None

    app = dashboard_app(store, verify_token=verify, check_host_origin=check)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await client.get("/dashboard/data", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
        await client.get("/dashboard")
        await client.post("/dashboard/login", data={"token": TOKEN}, headers=ORIGIN)
        evil = await client.get("/dashboard/data", headers={"host": "evil.example", "authorization": f"Bearer {TOKEN}"})
    assert evil.status_code == 421
    assert seen == ["/dashboard/data", "/dashboard", "/dashboard/login", "/dashboard/data"]


async def test_cross_origin_posts_are_refused(web: httpx.AsyncClient, store: DumpStore) -> None:
    r = await web.post("/dashboard/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"].startswith("Origin:") and "set-cookie" not in r.headers
    await sign_in(web)
    dump_id = store.write(failure(datetime.now(UTC), "auth", "m"))
    assert dump_id
    url = f"/dashboard/dumps/{dump_id}/delete"
    cross = await web.post(url, data={"confirm": dump_id}, headers={"origin": "http://evil.example"})
    no_origin = await web.post(url, data={"confirm": dump_id})  # a signed-in change must say where it came from
    assert cross.status_code == 403 and no_origin.status_code == 403
    assert store.read(dump_id).id == dump_id


# ---------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------


async def test_counts_match_the_store_for_200_mixed_dumps(web: httpx.AsyncClient, store: DumpStore) -> None:
    now = datetime.now(UTC)
    write_mixed(store, now, 200)
    store.write(failure(now - timedelta(days=3), "auth", "old/model"))  # in the week, not in the day
    await sign_in(web)

    day = (await web.get("/dashboard/data", params={"since": "day"})).json()["failures"]
    listed = everything(store, since=now - timedelta(days=1))
    assert len(listed) == 200
    assert day["totals"] == dict(Counter(s.error_type for s in listed))
    assert day["total"] == 200 == sum(b["total"] for b in day["buckets"])
    assert day["store_total"] == 201 and len(day["buckets"]) in (24, 25) and day["bucket_seconds"] == 3600
    assert [r["id"] for r in day["newest"]] == [s.id for s in store.list(limit=20).items]
    assert set(day["models"]) == {s.model for s in listed} and "old/model" not in day["models"]

    week = (await web.get("/dashboard/data", params={"since": "week", "limit": "200"})).json()["failures"]
    assert week["total"] == 201 and week["totals"]["auth"] == day["totals"]["auth"] + 1
    assert len(week["newest"]) == 200

    model = "anthropic/claude-sonnet-4"
    f = (await web.get("/dashboard/data", params={"category": "rate_limit", "model": model})).json()["failures"]
    expected = everything(store, error_type="rate_limit", model=model, since=now - timedelta(days=1))
    assert f["total"] == len(expected) > 0 and f["totals"] == {"rate_limit": len(expected)}
    assert [r["id"] for r in f["newest"]] == [s.id for s in expected[:20]]

    hour = (await web.get("/dashboard/data", params={"since": "hour"})).json()["failures"]
    assert hour["total"] == len(everything(store, since=now - timedelta(hours=1)))
    assert hour["bucket_seconds"] == 300


async def test_an_empty_store(web: httpx.AsyncClient) -> None:
    await sign_in(web)
    data = (await web.get("/dashboard/data")).json()
    f = data["failures"]
    assert f["total"] == 0 and f["totals"] == {} and f["newest"] == [] and f["store_total"] == 0
    assert all(b["total"] == 0 for b in f["buckets"])
    assert data["spend"] is None and data["models"] is None
    assert (await web.get("/dashboard")).status_code == 200


async def test_a_dump_with_1_mb_of_messages(web: httpx.AsyncClient, store: DumpStore) -> None:
    big = "x" * (1024 * 1024)
    dump_id = store.write(failure(datetime.now(UTC), "context_window", "openai/gpt-4o-mini", content=big))
    assert dump_id
    await sign_in(web)
    f = (await web.get("/dashboard/data")).json()["failures"]
    assert f["totals"] == {"context_window": 1} and f["newest"][0]["size_bytes"] > 1024 * 1024
    r = await web.get("/dashboard/data", params={"view": "dump", "id": dump_id})
    assert r.status_code == 200 and len(r.content) < 300_000  # the page gets a bounded preview
    d = r.json()["dump"]
    assert d["messages_truncated"] is True and d["message_count"] == 2
    assert d["messages"][1]["truncated"] is True and d["messages"][1]["content"] == big[: len(d["messages"][1]["content"])]


async def test_one_dumps_detail(web: httpx.AsyncClient, store: DumpStore) -> None:
    dump = failure(datetime.now(UTC), "rate_limit", "openai/gpt-4o-mini", attempts=3)
    dump_id = store.write(dump)
    await sign_in(web)
    d = (await web.get("/dashboard/data", params={"view": "dump", "id": dump_id})).json()["dump"]
    assert d["id"] == dump_id and d["category"] == "rate_limit" and d["estimated_tokens"] == 12
    assert [(a["index"], a["category"], a["status"], a["delay_s"]) for a in d["attempts"]] == [
        (1, "rate_limit", 429, 0.5),
        (2, "rate_limit", 429, 1.0),
        (3, "rate_limit", 429, 0.0),
    ]
    assert [m["role"] for m in d["messages"]] == ["system", "user"]
    assert d["hive_mcp_version"] and d["litellm_version"] and d["format_version"] == 1
    missing = dump_id[:-8] + "00000000"
    r = await web.get("/dashboard/data", params={"view": "dump", "id": missing})
    assert r.status_code == 404 and r.json()["error"].startswith("id:")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"category": "nonsense"}, "category"),
        ({"category": "Rate Limit!"}, "category"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2999-01-01T00:00:00Z"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"id": "../../etc/passwd"}, "id"),
        ({"view": "dump"}, "id"),
        ({"view": "everything"}, "view"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_query_parameter_is_a_400_naming_it(web: httpx.AsyncClient, params: dict[str, str], name: str) -> None:
    await sign_in(web)
    r = await web.get("/dashboard/data", params=params)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith(f"{name}: ") and "\n" not in error


async def test_a_since_long_ago_counts_everything(web: httpx.AsyncClient, store: DumpStore) -> None:
    store.write(failure(datetime.now(UTC) - timedelta(days=20), "auth", "m"))
    await sign_in(web)
    r = await web.get("/dashboard/data", params={"since": "0001-01-01T00:00:00"})
    assert r.status_code == 200
    f = r.json()["failures"]
    assert f["totals"] == {"auth": 1} and len(f["buckets"]) <= 49


async def test_a_cookie_that_is_not_ascii_is_refused_not_an_error(web: httpx.AsyncClient) -> None:
    r = await web.get("/dashboard/data", headers={"cookie": f"{COOKIE}=v1.1.2.".encode() + "\u00e9\u00e9".encode()})
    assert r.status_code == 401


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
async def test_a_moment_with_no_utc_time_is_a_400_naming_since(web: httpx.AsyncClient, since: str) -> None:
    await sign_in(web)
    r = await web.get("/dashboard/data", params={"since": since})
    assert r.status_code == 400 and r.json()["error"].startswith("since: "), r.text


async def test_a_repeated_parameter_is_a_400(web: httpx.AsyncClient) -> None:
    await sign_in(web)
    r = await web.get("/dashboard/data?since=day&since=week")
    assert r.status_code == 400 and r.json()["error"].startswith("since: ")


async def test_a_category_seen_in_the_store_may_be_filtered_on(web: httpx.AsyncClient, store: DumpStore) -> None:
    assert "budget_exceeded" not in KNOWN_CATEGORIES
    store.write(failure(datetime.now(UTC), "budget_exceeded", "m"))
    await sign_in(web)
    f = (await web.get("/dashboard/data", params={"category": "budget_exceeded"})).json()["failures"]
    assert f["totals"] == {"budget_exceeded": 1}


async def test_spend_and_models_sections_come_from_their_sources(store: DumpStore) -> None:
    class Spend(BaseModel):
        today_usd: float

    app = dashboard_app(store, verify_token=None, sources=Sources(spend=lambda: Spend(today_usd=1.5)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        data = (await client.get("/dashboard/data")).json()
        spend = (await client.get("/dashboard/data", params={"view": "spend"})).json()
    assert data["spend"] == {"today_usd": 1.5} and data["models"] is None
    assert spend["spend"] == {"today_usd": 1.5} and spend["failures"] is None


# ---------------------------------------------------------------------------
# Deleting
# ---------------------------------------------------------------------------


async def test_delete_needs_confirmation_and_is_logged(
    web: httpx.AsyncClient, store: DumpStore, caplog: pytest.LogCaptureFixture
) -> None:
    dump_id = store.write(failure(datetime.now(UTC), "auth", "m"))
    assert dump_id
    url = f"/dashboard/dumps/{dump_id}/delete"
    assert (await web.post(url, data={"confirm": dump_id}, headers=ORIGIN)).status_code == 401
    await sign_in(web)
    for form in ({}, {"confirm": "yes"}):
        r = await web.post(url, data=form, headers=ORIGIN)
        assert r.status_code == 400 and r.json()["error"].startswith("confirm: ")
    assert store.read(dump_id).id == dump_id
    with caplog.at_level(logging.WARNING, logger="hive_mcp.dashboard"):
        r = await web.post(url, data={"confirm": dump_id}, headers=ORIGIN)
    assert r.status_code == 200 and r.json() == {"deleted": dump_id}
    with pytest.raises(DumpNotFound):
        store.read(dump_id)
    assert any(rec.levelno == logging.WARNING and dump_id in rec.getMessage() for rec in caplog.records)
    again = await web.post(url, data={"confirm": dump_id}, headers=ORIGIN)
    assert again.status_code == 404


# ---------------------------------------------------------------------------
# The page's assets
# ---------------------------------------------------------------------------


async def test_the_page_loads_nothing_from_elsewhere(web: httpx.AsyncClient) -> None:
    await sign_in(web)
    page = await web.get("/dashboard")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(ref.startswith("/dashboard/static/") for ref in refs)
    for ref in refs:
        asset = await web.get(ref)
        assert asset.status_code == 200 and "http://" not in asset.text.replace("http://www.w3.org/2000/svg", "")
    assert (await web.get("/dashboard/static/secret.py")).status_code == 404


# ---------------------------------------------------------------------------
# The MCP App
# ---------------------------------------------------------------------------


@pytest.fixture
def app_server(store: DumpStore) -> MCPServer:
    # hive-mcp's own server; its provider is never loaded (the dashboard calls no model)
    return mcp_server(DeferredProvider(lambda: None, model="m"), store, default_model="m")


async def test_the_ui_resource_is_listed_and_read_as_an_mcp_app(app_server: MCPServer) -> None:
    async with Client(app_server, raise_exceptions=True) as client:
        listed = (await client.list_resources()).resources
        [ui] = [r for r in listed if str(r.uri) == RESOURCE_URI]
        assert ui.mime_type == APP_MIME_TYPE
        contents = (await client.read_resource(RESOURCE_URI)).contents
    assert len(contents) == 1 and contents[0].mime_type == APP_MIME_TYPE
    html = getattr(contents[0], "text")
    assert 'data-mode="app"' in html and "ui/initialize" in html  # the script is inlined: one document
    assert "<script src" not in html and "<link" not in html


async def test_the_server_advertises_the_apps_extension(app_server: MCPServer) -> None:
    async with Client(app_server, raise_exceptions=True) as client:
        extensions = client.server_capabilities.extensions or {}
    assert EXTENSION_ID in extensions


def test_the_helpers_for_hand_written_resource_handlers_match_the_registered_resource() -> None:
    listed = ui_resource()
    read = read_ui_resource().contents[0]
    assert listed.uri == read.uri == RESOURCE_URI and listed.mime_type == read.mime_type == APP_MIME_TYPE
    assert 'data-mode="app"' in getattr(read, "text")


async def test_the_dashboard_tool_links_the_app_and_stays_small(app_server: MCPServer) -> None:
    async with Client(app_server, raise_exceptions=True) as client:
        tools = (await client.list_tools()).tools
    [tool] = [t for t in tools if t.name == DASHBOARD_TOOL]
    assert tool.meta == {"ui": {"resourceUri": RESOURCE_URI}}
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert len(tool.model_dump_json(by_alias=True, exclude_none=True)) < 1500
    [listing] = [t for t in tools if t.name == "list_failed_requests"]  # the failures open in the app too
    assert listing.meta == {"ui": {"resourceUri": RESOURCE_URI}}


async def test_the_tool_returns_the_same_data_as_the_web_endpoint(app_server: MCPServer, store: DumpStore) -> None:
    write_mixed(store, datetime.now(UTC), 30)
    app = dashboard_app(store, verify_token=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web_client:
        web_data = (await web_client.get("/dashboard/data", params={"since": "week"})).json()
    async with Client(app_server, raise_exceptions=True) as client:
        result = await client.call_tool(DASHBOARD_TOOL, {"since": "week"})
        bad = await client.call_tool(DASHBOARD_TOOL, {"category": "nonsense"})
    assert not result.is_error and result.structured_content is not None
    tool_f, web_f = result.structured_content["failures"], web_data["failures"]
    assert tool_f["totals"] == web_f["totals"] and tool_f["newest"] == web_f["newest"]
    text = getattr(result.content[0], "text")
    assert text.startswith("30 failed request(s)") and web_f["newest"][0]["id"] in text
    assert bad.is_error and getattr(bad.content[0], "text").startswith("category: ")


def test_the_page_is_packaged(tmp_path: Path) -> None:
    from hive_mcp.dashboard.assets import asset, page

    for name in ("page.html", "page.js", "page.css"):
        assert asset(name)
    assert json.dumps(page("app"))  # renders without placeholders left
    assert "{{" not in page("app") and "{{" not in page("web")


@pytest.mark.parametrize("since", ["2h", "1d12h"])
async def test_since_takes_the_durations_the_command_line_and_the_tools_take(
    web: httpx.AsyncClient, store: DumpStore, since: str
) -> None:
    now = datetime.now(UTC)
    store.write(failure(now - timedelta(minutes=30), "auth", "m"))
    store.write(failure(now - timedelta(days=3), "auth", "m"))
    await sign_in(web)
    r = await web.get("/dashboard/data", params={"since": since})
    assert r.status_code == 200, r.text
    assert r.json()["failures"]["totals"] == {"auth": 1}
