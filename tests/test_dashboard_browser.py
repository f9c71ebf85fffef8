"""The dashboard in a real browser: headless chromium loads it from uvicorn and we read the rendered DOM.

Skipped where no chromium binary exists (install one with .ci/tools.sh, or
`apt-get install chromium`). Run alone: `.venv/bin/python -m pytest -q tests/test_dashboard_browser.py`.
Set HIVE_MCP_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the README's screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from hive_mcp.dashboard import Sources
from hive_mcp.dashboard.app import RESOURCE_URI
from hive_mcp.dashboard.models import models_source

from hive_mcp.provider import DeferredProvider
from hive_mcp.dashboard.web import dashboard_app, with_dashboard
from hive_mcp.dumps import DumpStore
from hive_mcp.http.guard import HttpGuard
from hive_mcp.mcp.usage_view import usage_source
from hive_mcp.spend import Budget, Budgets, CallRecord, Reservation, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.tokens import bearer_tokens
from tests.cdp import Browser
from tests.dashboard_dumps import failure, write_mixed
from tests.dashboard_models import listing, write_days
from tests.clients import mcp_server

DASHBOARD_TOOL = "dashboard"
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (see .ci/tools.sh)")

BROWSER_TIMEOUT_S = 120
START_TIMEOUT_S = 20
ALICE = "tok-alice-browser-0123456789"
BOB = "tok-bob-browser-0123456789"


class Rendered(HTMLParser):
    """Every element with a data-testid: (testid, attributes, text inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[tuple[str, list[str] | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        text: list[str] | None = None
        if "data-testid" in a:
            text = []
            self.found.append((a["data-testid"], a, text))
        if tag not in ("meta", "link", "input", "br", "img", "line", "rect"):
            self._open.append((tag, text))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, text in self._open:
            if text is not None:
                text.append(data)

    def text(self, testid: str) -> str:
        return "".join(self.one(testid)[2]).strip()

    def one(self, testid: str) -> tuple[str, dict[str, str], list[str]]:
        hits = self.all(testid)
        assert len(hits) == 1, f"{len(hits)} elements with data-testid={testid}"
        return hits[0]

    def all(self, testid: str) -> list[tuple[str, dict[str, str], list[str]]]:
        return [f for f in self.found if f[0] == testid]

    def counts(self) -> dict[str, int]:
        return {t[len("count-") :]: int("".join(x).strip()) for t, _, x in self.found if t.startswith("count-")}


def chromium(url: str, profile: Path, *extra: str) -> str:
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}"]
    args += ["--virtual-time-budget=10000", *extra, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered(url: str, profile: Path) -> Rendered:
    dom = Rendered()
    dom.feed(chromium(url, profile, "--dump-dom"))
    return dom


class Served:
    """An ASGI app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:  # a bounded wait for uvicorn's own flag
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT_S)
        self.sock.close()


@pytest.fixture
def known(store: DumpStore) -> tuple[DumpStore, str]:
    """60 mixed dumps over the last day, then the newest: a rate limit retried three times."""
    now = datetime.now(UTC)
    write_mixed(store, now - timedelta(minutes=5), 60)
    newest = store.write(failure(now - timedelta(minutes=1), "rate_limit", "openai/gpt-4o-mini", attempts=3))
    assert newest
    return store, newest


def expected_counts(store: DumpStore) -> Counter[str]:
    page = store.list(since=datetime.now(UTC) - timedelta(days=1), limit=200)
    assert page.next_cursor is None
    return Counter(s.error_type for s in page.items)


def test_the_page_in_chromium_shows_the_stores_numbers(known: tuple[DumpStore, str], tmp_path: Path) -> None:
    store, newest = known
    with Served(dashboard_app(store, verify_token=None)) as served:
        dom = rendered(f"{served.url}/dashboard", tmp_path / "profile")
        shot = tmp_path / "dashboard.png"
        chromium(
            f"{served.url}/dashboard?limit=8",
            tmp_path / "profile",
            "--hide-scrollbars",
            "--window-size=1280,900",
            f"--screenshot={shot}",
        )
    assert dom.counts() == expected_counts(store)
    assert int(dom.text("total")) == 61
    assert dom.one("newest-id")[1]["data-id"] == newest == store.list(limit=1).items[0].id
    assert dom.text("detail-id") == newest  # the newest dump opens by itself
    attempts = dom.all("attempt")
    assert [(a["data-category"], a["data-status"]) for _, a, _ in attempts] == [("rate_limit", "429")] * 3
    assert dom.text("spend-not-configured") == "Spend: not configured."
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get("HIVE_MCP_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, target)


HOST_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>test host</title></head>
<body>
<p data-testid="host-log"></p>
<div id="copied"></div>
<iframe id="app" src="/app.html" sandbox="allow-scripts allow-same-origin" width="1200" height="900"></iframe>
<script>
const PLAYED = __PLAYED__;
const frame = document.getElementById("app");
const seen = [];
function send(msg) { frame.contentWindow.postMessage(msg, "*"); }
function same(a, b) { return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort()); }
window.addEventListener("message", (e) => {
  if (e.source !== frame.contentWindow) return;
  const m = e.data;
  seen.push(m.method);
  if (m.method === "ui/initialize") {
    send({jsonrpc: "2.0", id: m.id, result: {protocolVersion: m.params.protocolVersion,
      hostInfo: {name: "test-host", version: "1"}, hostCapabilities: {serverTools: {}}, hostContext: {theme: "light"}}});
  } else if (m.method === "ui/notifications/initialized") {
    send({jsonrpc: "2.0", method: "ui/notifications/tool-input", params: {arguments: PLAYED.initial.arguments}});
    send({jsonrpc: "2.0", method: "ui/notifications/tool-result", params: PLAYED.initial.result});
  } else if (m.method === "tools/call") {
    const hit = PLAYED.calls.find((c) => c.name === m.params.name && same(c.arguments, m.params.arguments));
    send(hit ? {jsonrpc: "2.0", id: m.id, result: hit.result}
             : {jsonrpc: "2.0", id: m.id, error: {code: -32602, message: "unexpected call " + JSON.stringify(m.params)}});
  }
});
// --dump-dom shows this document only: copy what the app rendered into it once a dump's attempts are shown.
const timer = setInterval(() => {
  const doc = frame.contentDocument;
  if (!doc || !doc.querySelector("[data-testid=attempt]")) return;
  clearInterval(timer);
  for (const sel of ["#summary", "#newest", "#detail"]) document.getElementById("copied").appendChild(doc.querySelector(sel).cloneNode(true));
  document.querySelector("[data-testid=host-log]").textContent = seen.join(" ");
}, 50);
</script>
</body></html>
"""


async def play_the_server(store: DumpStore, newest: str) -> tuple[str, dict[str, Any]]:
    """The app's HTML and the tool results a host would pass, both from the SDK's real Client."""
    server = mcp_server(DeferredProvider(lambda: None, model="m"), store, default_model="m")  # never loaded

    def wire(result: Any) -> dict[str, Any]:
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    async with Client(server, raise_exceptions=True) as client:
        html = getattr((await client.read_resource(RESOURCE_URI)).contents[0], "text")
        initial = await client.call_tool(DASHBOARD_TOOL, {})
        one = {"view": "dump", "id": newest}
        detail = await client.call_tool(DASHBOARD_TOOL, one)
    return html, {
        "initial": {"arguments": {}, "result": wire(initial)},
        "calls": [{"name": DASHBOARD_TOOL, "arguments": one, "result": wire(detail)}],
    }


def test_the_app_in_a_host_page_shows_the_same_numbers(known: tuple[DumpStore, str], tmp_path: Path) -> None:
    store, newest = known
    app_html, played = anyio.run(play_the_server, store, newest)
    host_html = HOST_PAGE.replace("__PLAYED__", json.dumps(played).replace("</", "<\\/"))

    async def host(_: Request) -> HTMLResponse:
        return HTMLResponse(host_html)

    async def app_page(_: Request) -> HTMLResponse:
        return HTMLResponse(app_html)

    test_host = Starlette(routes=[Route("/host", host), Route("/app.html", app_page)])
    with Served(with_dashboard(dashboard_app(store, verify_token=None), test_host)) as served:
        dom = rendered(f"{served.url}/host", tmp_path / "profile")
        web_data = httpx.get(f"{served.url}/dashboard/data", timeout=30).json()

    log = dom.text("host-log").split()
    assert log[:2] == ["ui/initialize", "ui/notifications/initialized"] and "tools/call" in log
    assert dom.counts() == expected_counts(store) == web_data["failures"]["totals"]
    assert dom.one("newest-id")[1]["data-id"] == newest
    assert dom.text("detail-id") == newest
    assert [a["data-category"] for _, a, _ in dom.all("attempt")] == ["rate_limit"] * 3


def test_the_models_table_in_chromium(store: DumpStore, tmp_path: Path) -> None:
    expected = write_days(store, datetime.now(UTC))
    app = dashboard_app(store, verify_token=None, sources=Sources(models=models_source(store, listing)))
    with Served(app) as served:
        dom = rendered(f"{served.url}/dashboard", tmp_path / "profile")
    assert [a["data-group"] for _, a, _ in dom.all("model-row")] == ["fast", "smart"]
    assert ["".join(t).strip() for _, _, t in dom.all("model-failures")] == [str(expected["fast"]), "0"]
    assert ["".join(t).strip() for _, _, t in dom.all("model-aliases")] == ["quick", "none"]
    assert ["".join(t).strip() for _, _, t in dom.all("model-prices")] == ["$0.150 / $0.600", "unknown / unknown"]
    assert ["".join(t).strip() for _, _, t in dom.all("model-context")] == ["128k / 16k", "? / ?"]
    assert ["".join(t).strip() for _, _, t in dom.all("model-calls")] == ["not recorded"] * 2
    deployments = [(a["data-name"], a["data-health"], "".join(t).strip()) for _, a, t in dom.all("deployment")]
    assert deployments == [
        ("openai/gpt-4o-mini", "healthy", "openai/gpt-4o-mini healthy"),
        ("azure/gpt-4o-mini-eu", "cooling_down", "azure/gpt-4o-mini-eu cooling down until 2026-12-01 12:30:00Z"),
        ("anthropic/claude-sonnet-4-5", "healthy", "anthropic/claude-sonnet-4-5 healthy"),
    ]
    assert dom.text("spend-not-configured") == "Spend: not configured."
    assert not dom.all("models-not-configured")


def test_a_deployment_without_its_credentials_reads_no_credentials_in_chromium(store: DumpStore, tmp_path: Path) -> None:
    from hive_mcp.limits import Limits
    from hive_mcp.mcp.model_list import ModelsView
    from hive_mcp.llms.catalogue import DeploymentInfo, ModelGroup
    from tests.catalogues import FakeCatalogue

    deployments = [DeploymentInfo.without_credentials("azure", "gpt-4o", ["AZURE_API_KEY"]),
                   DeploymentInfo(provider="openai", model="gpt-4o")]  # fmt: skip
    view = ModelsView(FakeCatalogue([ModelGroup(name="gpt", deployments=deployments)]), "gpt", Limits())
    app = dashboard_app(store, verify_token=None, sources=Sources(models=models_source(store, view.listing)))
    with Served(app) as served:
        dom = rendered(f"{served.url}/dashboard", tmp_path / "profile")
    assert [(a["data-health"], "".join(t).strip()) for _, a, t in dom.all("deployment")] == [
        ("no_credentials", "azure/gpt-4o no credentials (not set: AZURE_API_KEY)"),
        ("healthy", "openai/gpt-4o healthy"),
    ]


SPEND_NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


def known_spend(tmp_path: Path) -> Spend:
    """Four settled calls (three today, one earlier this month) and $0.30 still held for alice, at a fixed clock."""
    backend = SQLiteBackend(tmp_path / "spend.sqlite3")
    budgets = Budgets((Budget("all", "", "day", micro(5)), Budget("caller", "alice", "month", micro(2))))
    for caller, group, cost, ago in [
        ("alice", "smart", 1_250_000, timedelta(hours=1)),
        ("alice", "fast", 150_000, timedelta(hours=2)),
        ("bob", "fast", 450, timedelta(minutes=30)),
        ("bob", "smart", 2_000_000, timedelta(days=5)),
    ]:
        when = SPEND_NOW - ago
        r = Reservation(f"{caller}-{group}-{cost}", caller, group, 0, when, when + timedelta(minutes=5))
        backend.settle(r, CallRecord(when, caller, group, group, 100, 10, 0, 0, cost, None, False))
    start = SPEND_NOW - timedelta(minutes=1)
    held = Reservation("held", "alice", "smart", micro(0.3), start, SPEND_NOW + timedelta(hours=1))
    backend.reserve(held, list(budgets.items))
    spend = Spend(backend, budgets, DeferredProvider(lambda: None, model="m"))  # the provider is never asked
    spend.clock = lambda: SPEND_NOW
    return spend


def test_the_spend_view_in_chromium(store: DumpStore, tmp_path: Path) -> None:
    spend = known_spend(tmp_path)
    app = dashboard_app(store, verify_token=None, sources=Sources(spend=usage_source(spend)))
    with Served(app) as served:
        dom = rendered(f"{served.url}/dashboard?tab=spend", tmp_path / "profile")
        shot = tmp_path / "spend.png"
        chromium(f"{served.url}/dashboard?tab=spend", tmp_path / "profile", "--window-size=1280,900",
                 f"--screenshot={shot}")  # fmt: skip
    spend.backend.close()

    def figures(k: str) -> list[str]:
        return ["".join(t).strip() for _, _, t in dom.all(k)]

    tables: dict[tuple[str, str], list[list[str]]] = {}
    row: list[str] = []
    for testid, a, text in dom.found:  # document order: a row, then its own cells
        if testid == "spend-row":
            tables.setdefault((a["data-span"], a["data-by"]), []).append(row := [])
        elif testid in ("spend-name", "spend-usd", "spend-calls"):
            row.append("".join(text).strip())

    def table(span: str, by: str) -> list[tuple[str, ...]]:
        return [tuple(r) for r in tables[(span, by)]]

    assert table("today", "model") == [("fast", "$0.15045", "2"), ("smart", "$1.25", "1")]
    assert table("today", "caller") == [("alice", "$1.40", "2"), ("bob", "$0.00045", "1")]
    assert table("month", "model") == [("fast", "$0.15045", "2"), ("smart", "$3.25", "2")]
    assert table("month", "caller") == [("alice", "$1.40", "2"), ("bob", "$2.00045", "2")]
    totals = list(zip(figures("spend-total-usd"), figures("spend-total-calls")))  # today twice, then the month twice
    assert totals == [("$1.40045", "3")] * 2 + [("$3.40045", "4")] * 2

    assert [a["data-budget"] for _, a, _ in dom.all("budget")] == ["all:day", "caller:alice:month"]
    assert figures("budget-name") == ["Overall, daily", "Caller alice, monthly"]
    assert figures("budget-spent") == ["$1.40045", "$1.40"]
    assert figures("budget-reserved") == ["$0.30", "$0.30"]
    assert figures("budget-left") == ["$3.29955", "$0.30"]
    assert figures("budget-limit") == ["$5.00", "$2.00"]
    assert figures("budget-resets") == ["2026-12-16 00:00:00Z", "2027-01-01 00:00:00Z"]
    # The bar is drawn to scale: alice has spent 1.40 of 2.00, 70% of the bar's 300 units.
    assert [float(a["width"]) for _, a, _ in dom.all("budget-bar-spent")] == pytest.approx([300 * 1.40045 / 5, 210])
    assert not dom.all("spend-not-configured")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("tab", ["spend", "models"])
def test_the_dump_being_shown_is_named_only_on_the_failures_tab(known: tuple[DumpStore, str], tab: str,
                                                                 tmp_path: Path) -> None:
    store, newest = known
    spend = known_spend(tmp_path)
    app = dashboard_app(store, verify_token=None,
                        sources=Sources(spend=usage_source(spend), models=models_source(store, listing)))
    with Served(app) as served:
        on_failures = rendered(f"{served.url}/dashboard", tmp_path / "profile")
        elsewhere = rendered(f"{served.url}/dashboard?tab={tab}", tmp_path / "profile")
    spend.backend.close()
    assert on_failures.text("status") == f"Showing {newest}"  # the newest dump opens by itself
    assert newest not in elsewhere.text("status") and "Showing" not in elsewhere.text("status")


def test_a_caller_signs_in_sees_only_its_own_and_signs_out(store: DumpStore, tmp_path: Path) -> None:
    """With named tokens set, bob signs in through the page's own form (its POST must carry a real Origin),
    sees his dump and his spend and none of alice's, and signs out: his old cookie is then refused."""
    tokens = bearer_tokens(f"alice:{ALICE},bob:{BOB}", None)
    guard = HttpGuard(lambda *_: None, tokens=tokens, max_body_bytes=1024)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    ids = {}
    for who, ago in (("alice", 2), ("bob", 3)):
        dump = failure(now - timedelta(minutes=ago), "rate_limit", "openai/gpt-4o-mini", content=f"{who}'s secret")
        dump.caller = who
        ids[who] = store.write(dump)
    spend = known_spend(tmp_path)
    app = dashboard_app(store, verify_token=guard.caller_of, sources=lambda who: Sources(spend=usage_source(spend, who)))
    with Served(app) as served, Browser(CHROMIUM, tmp_path / "profile") as browser:  # type: ignore[arg-type]
        browser.go(f"{served.url}/dashboard")
        assert browser.evaluate("document.querySelectorAll('input[name=token]').length") == 1
        browser.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(BOB)}")
        browser.loaded_after(lambda: browser.evaluate("document.querySelector('form button[type=submit]').click()"))
        rows = browser.until(
            "[...document.querySelectorAll('[data-testid=dump-row] button[data-id]')].map(b => b.dataset.id)",
            "the newest dumps",
        )
        assert rows == [ids["bob"]] and ids["alice"] not in browser.evaluate("document.body.innerHTML")
        browser.go(f"{served.url}/dashboard?tab=spend")
        callers = browser.until(
            "[...document.querySelectorAll('[data-testid=spend-row][data-by=caller]')].map(r => r.dataset.name)",
            "the spend by caller",
        )
        assert set(callers) == {"bob"}
        cookie = browser.cookies()["hive_dashboard"]
        assert httpx.get(f"{served.url}/dashboard/data", cookies={"hive_dashboard": cookie}).status_code == 200
        browser.loaded_after(lambda: browser.evaluate("document.querySelector('[data-testid=sign-out]').click()"))
        assert browser.evaluate("document.querySelectorAll('input[name=token]').length") == 1
        assert "hive_dashboard" not in browser.cookies()
        assert httpx.get(f"{served.url}/dashboard/data", cookies={"hive_dashboard": cookie}).status_code == 401
    spend.backend.close()
