"""The resources of the model catalogue, the failed requests and the dashboard app, as routes (routes.py).

`MCPServer` returns whole lists with no cursor, and `resources/list` must stay
small at 10,000 dumps, so the listing pages (registered in server.py). The
fixed resources (`hive://models`, the dumps' index, the dashboard app) lead the first page; the
cursor pages the dumps alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from mcp_types import INVALID_PARAMS, ReadResourceResult, Resource, ResourceTemplate

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from ..dumps import CallerDumps, DumpLookupError, DumpStore, DumpSummary, InvalidCursor, is_valid_dump_id
from ..tokens import owner_scope
from .args import ListFailedRequestsArgs
from .model_list import ModelsView
from ..dashboard.app import RESOURCE_URI as DASHBOARD_URI
from ..dashboard.app import read_ui_resource, ui_resource
from .constants import DUMP_URI_TEMPLATE, INDEX_URI, MODEL_URI_TEMPLATE, MODELS_URI, dump_uri
from .callers import caller
from ..text import short
from .errors import safe_line
from .results import FailedRequestPage
from .routes import Route, not_found


def caller_dumps(store: DumpStore, ctx: ServerRequestContext[Any, Any], admins: frozenset[str]) -> CallerDumps:
    """The dumps the caller of this request may see: its own, or every one for admins and the stdio user."""
    return CallerDumps(store, owner_scope(caller(ctx), admins))


async def list_page(store: CallerDumps, args: ListFailedRequestsArgs) -> FailedRequestPage:
    """One page of the listing `args` asks for (raises InvalidCursor)."""
    page = await anyio.to_thread.run_sync(
        lambda: store.list(
            error_type=args.error_type, model=args.model, since=args.since, limit=args.limit, cursor=args.cursor
        )
    )
    return FailedRequestPage.from_page(page)


def _models_resource() -> Resource:
    return Resource(
        uri=MODELS_URI,
        name="models",
        title="Models",
        description="What `model` may name: each group's aliases, deployments and their health, "
        "context window, prices and capabilities (as list_models returns it).",
        mime_type="application/json",
    )


def _index_resource() -> Resource:
    return Resource(
        uri=INDEX_URI,
        name="failed-requests",
        title="Failed LLM requests",
        description="The newest failed calls (the first page of list_failed_requests).",
        mime_type="application/json",
    )


def _dump_resource(s: DumpSummary) -> Resource:
    return Resource(
        uri=dump_uri(s.id),
        name=s.id,
        title=f"{s.error_type} from {s.model}",
        description=f"{s.outcome} after {s.attempt_count} attempt(s) at {s.timestamp.isoformat()}",
        mime_type="application/json",
        size=s.size_bytes,
    )


@dataclass
class ResourceHandlers:
    """The catalogue, the failed requests and the dashboard app as routes (`routes`), and the dumps as
    the listing's pages (`pages`); each caller sees its own dumps (`admins` all)."""

    store: DumpStore
    page_size: int
    models: ModelsView
    admins: frozenset[str] = frozenset()

    def dumps(self, ctx: ServerRequestContext[Any, Any]) -> CallerDumps:
        return caller_dumps(self.store, ctx, self.admins)

    async def pages(self, ctx: ServerRequestContext[Any, Any], cursor: str | None) -> tuple[list[Resource], str | None]:
        """The caller's dumps, newest first, one page at a time."""
        dumps = self.dumps(ctx)
        try:
            page = await anyio.to_thread.run_sync(lambda: dumps.list(limit=self.page_size, cursor=cursor))
        except InvalidCursor:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data={"cursor": short(cursor)}) from None
        return [_dump_resource(s) for s in page.items], page.next_cursor

    async def read_models(self, ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> str:
        # In a worker thread: a catalogue may ask litellm's model information, whose first
        # use waits for litellm's import (seconds, in the background after start-up).
        return (await anyio.to_thread.run_sync(self.models.listing)).model_dump_json(indent=2)

    async def read_group(self, ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> str:
        group = await anyio.to_thread.run_sync(self.models.group, uri)
        if group is None:
            raise not_found(ctx, uri, "no model group or alias of that name")
        return group.model_dump_json(indent=2)

    async def read_index(self, ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> str:
        return (await list_page(self.dumps(ctx), ListFailedRequestsArgs())).model_dump_json(indent=2)

    async def read_dump(self, ctx: ServerRequestContext[Any, Any], uri: str, dump_id: str) -> str:
        if not is_valid_dump_id(dump_id):  # refused before any filesystem access
            raise not_found(ctx, uri, "not a failed-request id")
        try:
            return await anyio.to_thread.run_sync(self.dumps(ctx).read_text, dump_id)
        except DumpLookupError as exc:
            raise not_found(ctx, uri, safe_line(str(exc), 200)) from None

    def models_routes(self) -> list[Route]:
        """`hive://models` and one group by its name or an alias."""
        group = ResourceTemplate(
            uri_template=MODEL_URI_TEMPLATE, name="model-group", title="A model group",
            description="One entry of hive://models, by its name or an alias.", mime_type="application/json",
        )  # fmt: skip
        return [Route(MODELS_URI, _models_resource(), self.read_models), Route(MODEL_URI_TEMPLATE, group, self.read_group)]

    def dump_routes(self) -> list[Route]:
        """The failed requests' index (the first page of list_failed_requests) and one failed request."""
        dump = ResourceTemplate(
            uri_template=DUMP_URI_TEMPLATE, name="failed-request", title="A failed LLM request",
            description="Everything sent in one failed (or retried) call, with each attempt's error. "
            "Credentials are redacted.",
            mime_type="application/json",
        )  # fmt: skip
        return [Route(INDEX_URI, _index_resource(), self.read_index),
                Route(DUMP_URI_TEMPLATE, dump, self.read_dump, owned=True)]  # fmt: skip


async def _read_dashboard(ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> ReadResourceResult:
    return read_ui_resource()


DASHBOARD_ROUTE = Route(DASHBOARD_URI, ui_resource(), _read_dashboard)
"""The dashboard's MCP App page (`ui://hive/dashboard`)."""
