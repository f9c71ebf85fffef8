"""The dashboard as an MCP App: the `ui://hive/dashboard` resource and the `dashboard` tool that links it.

Registered through the SDK's `Apps` extension (`mcp.server.apps`), so the server
advertises `io.modelcontextprotocol/ui`, the resource is served as
`text/html;profile=mcp-app`, and the tool carries `_meta.ui.resourceUri`. A host
that renders apps shows the page and hands it the tool's result; the page then
calls `dashboard` again through the host for other filters or one dump. A host
without apps gets the same tool with a text summary and the structured data.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from mcp.server.apps import APP_MIME_TYPE, Apps
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ReadResourceResult, Resource, TextContent, TextResourceContents, ToolAnnotations
from pydantic import Field

from ..dumps import DumpLookupError, DumpStore
from ..text import one_line
from .assets import page
from .data import DashboardData, QueryError, Sources, build, parse_query

RESOURCE_URI = "ui://hive/dashboard"
TOOL_NAME = "dashboard"


def _summary(data: DashboardData) -> str:
    if data.dump is not None:
        d = data.dump
        return f"dump {d.id}: {d.category} from {d.model}, {d.outcome} after {len(d.attempts)} attempt(s)"
    f = data.failures
    if f is None:
        section = data.spend if data.view == "spend" else data.models
        return f"{data.view}: " + ("not configured" if section is None else "see the structured content")
    counts = ", ".join(f"{cat} {n}" for cat, n in f.totals.items()) or "none"
    newest = f"; newest {f.newest[0].id}" if f.newest else ""
    return f"{f.total} failed request(s) since {f.start.isoformat(timespec='seconds')}: {counts}{newest}"


def dashboard_apps(store: DumpStore, *, sources: Sources = Sources()) -> Apps:
    """The Apps extension holding the dashboard page and its tool; pass it to `MCPServer(extensions=[...])`."""
    apps = Apps()
    apps.add_html_resource(
        RESOURCE_URI,
        page("app"),
        name="hive-dashboard",
        title="hive-mcp dashboard",
        description="Failed LLM requests over time, the newest ones, and one request's attempts.",
    )

    @apps.tool(
        resource_uri=RESOURCE_URI,
        name=TOOL_NAME,
        title="Dashboard",
        description="Failed LLM requests: counts by category over time, the newest, or one dump (view=dump, id=...).",
        annotations=ToolAnnotations(title="Dashboard", read_only_hint=True, open_world_hint=False),
    )
    async def dashboard(
        view: Annotated[str, Field(description="failures, dump, spend or models")] = "failures",
        since: Annotated[str, Field(description="hour, day, week or an ISO 8601 time")] = "day",
        model: str | None = None,
        category: str | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        id: Annotated[str | None, Field(description="a dump id, for view=dump")] = None,
    ) -> CallToolResult:
        raw = {"view": view, "since": since, "model": model, "category": category, "limit": limit, "id": id}
        try:
            query = parse_query(raw)
            data = await anyio.to_thread.run_sync(lambda: build(store, query, sources=sources))
        except (QueryError, DumpLookupError) as exc:
            return CallToolResult(content=[TextContent(type="text", text=one_line(str(exc), 300))], is_error=True)
        return CallToolResult(
            content=[TextContent(type="text", text=_summary(data))],
            structured_content=data.model_dump(mode="json"),
        )

    return apps


def ui_resource() -> Resource:
    """The app's entry for a hand-written `resources/list` handler (one that replaces MCPServer's)."""
    return Resource(uri=RESOURCE_URI, name="hive-dashboard", title="hive-mcp dashboard", mime_type=APP_MIME_TYPE)


def read_ui_resource() -> ReadResourceResult:
    """What `resources/read` of `ui://hive/dashboard` answers, for a hand-written handler."""
    return ReadResourceResult(contents=[TextResourceContents(uri=RESOURCE_URI, text=page("app"), mime_type=APP_MIME_TYPE)])


def register_dashboard_app(server: MCPServer, store: DumpStore, *, sources: Sources = Sources()) -> Apps:
    """Add the dashboard app to a server already built.

    The SDK fixes extensions at construction and applies them with
    `_apply_extension`; this calls it so a built server can gain the app. A server
    being constructed should take `dashboard_apps(store)` in `extensions=` instead.
    """
    apps = dashboard_apps(store, sources=sources)
    server._apply_extension(apps)  # pyright: ignore[reportPrivateUsage]
    return apps
