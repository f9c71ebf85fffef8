"""The dashboard as an MCP App: the `ui://hive/dashboard` resource and the `dashboard` tool that links it.

Registered through the SDK's `Apps` extension (`mcp.server.apps`), so the server
advertises `io.modelcontextprotocol/ui`, the resource is served as
`text/html;profile=mcp-app`, and the tool carries `_meta.ui.resourceUri`. A host
that renders apps shows the page and hands it the tool's result; the page then
calls `dashboard` again through the host for other filters or one dump. A host
without apps gets the same tool with a text summary and the structured data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from mcp.server.apps import APP_MIME_TYPE, Apps
from mcp_types import CallToolResult, ReadResourceResult, Resource, TextContent, TextResourceContents
from pydantic import BaseModel, ConfigDict, Field

from ..defaults import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from ..dumps import DumpLookupError
from ..text import one_line
from .assets import page
from .data import DEFAULT_SINCE, DEFAULT_VIEW, View
from .data import DashboardData, Dumps, QueryError, Sources, build, parse_query

RESOURCE_URI = "ui://hive/dashboard"


def _summary(data: DashboardData) -> str:
    if data.dump is not None:
        d = data.dump
        return f"dump {d.id}: {d.category} from {d.model}, {d.outcome} after {d.attempt_count} attempt(s)"
    f = data.failures
    if f is None and data.view == "models" and data.models is not None:
        groups = data.models.get("groups", [])
        failed = ", ".join(f"{g['name']} {g['failures_today']}" for g in groups[:10]) or "none"
        failed += ", ..." if len(groups) > 10 else ""
        return f"models: {len(groups)} group(s); failures today (UTC): {failed}"
    if f is None:
        section = data.spend if data.view == "spend" else data.models
        if data.view in data.unavailable:
            return f"{data.view}: unavailable ({data.unavailable[data.view]})"
        return f"{data.view}: " + ("not configured" if section is None else "see the structured content")
    counts = ", ".join(f"{cat} {n}" for cat, n in f.totals.items()) or "none"
    newest = f"; newest {f.newest[0].id}" if f.newest else ""
    down = "".join(f"; {name} unavailable ({why})" for name, why in data.unavailable.items())
    return f"{f.total} failed request(s) since {f.start.isoformat(timespec='seconds')}: {counts}{newest}{down}"


class DashboardArgs(BaseModel):
    """The `dashboard` tool's arguments, for its published schema; `parse_query` checks them."""

    model_config = ConfigDict(extra="forbid")

    view: View = DEFAULT_VIEW
    since: str = Field(default=DEFAULT_SINCE, description="hour, day, week or an ISO 8601 time")
    model: str | None = None
    category: str | None = None
    limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT)
    id: str | None = Field(default=None, description="A dump id, for view=dump")


TOOL_META = {"ui": {"resourceUri": RESOURCE_URI}}
"""The MCP Apps link (`_meta.ui.resourceUri`) a host follows to render the page."""


def dashboard_apps() -> Apps:
    """The Apps extension holding the dashboard page; pass it to `MCPServer(extensions=[...])`.

    The `dashboard` tool is defined with the server's other tools (see `dashboard_tool`)
    and carries `TOOL_META`, which is all the extension itself would add to it.
    """
    apps = Apps()
    apps.add_html_resource(
        RESOURCE_URI,
        page("app"),
        name="hive-dashboard",
        title="hive-mcp dashboard",
        description="Failed LLM requests over time, the newest ones, and one request's attempts.",
    )
    return apps


async def dashboard_tool(store: Dumps, raw: Mapping[str, Any], *, sources: Sources = Sources()) -> CallToolResult:
    """The `dashboard` tool's result for raw arguments: the data, and a one-line summary as text."""
    try:
        query = parse_query(raw)
        data = await anyio.to_thread.run_sync(lambda: build(store, query, sources=sources))
    except (QueryError, DumpLookupError) as exc:
        return CallToolResult(content=[TextContent(type="text", text=one_line(str(exc), 300))], is_error=True)
    return CallToolResult(
        content=[TextContent(type="text", text=_summary(data))],
        structured_content=data.model_dump(mode="json"),
    )


def ui_resource() -> Resource:
    """The app's entry for a hand-written `resources/list` handler (one that replaces MCPServer's)."""
    return Resource(uri=RESOURCE_URI, name="hive-dashboard", title="hive-mcp dashboard", mime_type=APP_MIME_TYPE)


def read_ui_resource() -> ReadResourceResult:
    """What `resources/read` of `ui://hive/dashboard` answers, for a hand-written handler."""
    return ReadResourceResult(contents=[TextResourceContents(uri=RESOURCE_URI, text=page("app"), mime_type=APP_MIME_TYPE)])
