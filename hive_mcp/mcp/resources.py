"""The resources, served by low-level handlers: the model catalogue and the failed requests.

`MCPServer` returns whole lists with no cursor, and `resources/list` must stay
small at 10,000 dumps, so these handlers page (registered in server.py). The
fixed resources (`hive://models`, the dumps' index, the dashboard app) lead the first page; the
cursor pages the dumps alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from mcp_types import (
    INVALID_PARAMS,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextResourceContents,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from ..dumps import CallerDumps, DumpLookupError, DumpStore, DumpSummary, InvalidCursor, is_valid_dump_id
from ..tokens import owner_scope
from .args import ListFailedRequestsArgs
from .model_list import ModelsView
from ..dashboard.app import RESOURCE_URI as DASHBOARD_URI
from ..dashboard.app import read_ui_resource, ui_resource
from .constants import DUMP_URI_PREFIX, DUMP_URI_TEMPLATE, INDEX_URI, MODEL_URI_PREFIX, MODEL_URI_TEMPLATE, MODELS_URI
from .constants import RESOURCE_NOT_FOUND_LEGACY, dump_uri
from .conversations import caller
from .errors import safe_line, short
from .results import FailedRequestPage


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


def not_found(ctx: ServerRequestContext[Any, Any], uri: str, why: str) -> MCPError:
    legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
    code = RESOURCE_NOT_FOUND_LEGACY if legacy else INVALID_PARAMS
    return MCPError(code=code, message=f"Resource not found: uri {short(uri, 80)}: {why}", data={"uri": uri})


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
    """The resource handlers of one server, bound to its dump store; each caller sees its own dumps (`admins` all)."""

    store: DumpStore
    page_size: int
    models: ModelsView
    admins: frozenset[str] = frozenset()

    def dumps(self, ctx: ServerRequestContext[Any, Any]) -> CallerDumps:
        return caller_dumps(self.store, ctx, self.admins)

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        """The catalogue and the dumps' index, then the dumps newest first, one page at a time."""
        cursor = params.cursor
        dumps = self.dumps(ctx)
        try:
            page = await anyio.to_thread.run_sync(lambda: dumps.list(limit=self.page_size, cursor=cursor))
        except InvalidCursor:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data={"cursor": short(cursor)}) from None
        resources: list[Resource] = []
        if cursor is None:
            resources += [_models_resource(), _index_resource(), ui_resource()]
        resources.extend(_dump_resource(s) for s in page.items)
        return ListResourcesResult(resources=resources, next_cursor=page.next_cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(
            resource_templates=[
                ResourceTemplate(
                    uri_template=MODEL_URI_TEMPLATE,
                    name="model-group",
                    title="A model group",
                    description="One entry of hive://models, by its name or an alias.",
                    mime_type="application/json",
                ),
                ResourceTemplate(
                    uri_template=DUMP_URI_TEMPLATE,
                    name="failed-request",
                    title="A failed LLM request",
                    description="Everything sent in one failed (or retried) call, with each attempt's error. "
                    "Credentials are redacted.",
                    mime_type="application/json",
                )
            ]
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        uri = params.uri
        if uri == DASHBOARD_URI:
            return read_ui_resource()
        if uri == MODELS_URI:
            # In a worker thread: a catalogue may ask litellm's model information, whose first
            # use waits for litellm's import (seconds, in the background after start-up).
            text = (await anyio.to_thread.run_sync(self.models.listing)).model_dump_json(indent=2)
        elif uri.startswith(MODEL_URI_PREFIX):
            group = await anyio.to_thread.run_sync(self.models.group, uri)
            if group is None:
                raise not_found(ctx, uri, "no model group or alias of that name")
            text = group.model_dump_json(indent=2)
        elif uri == INDEX_URI:
            page = await list_page(self.dumps(ctx), ListFailedRequestsArgs())
            text = page.model_dump_json(indent=2)
        elif uri.startswith(DUMP_URI_PREFIX):
            dump_id = uri[len(DUMP_URI_PREFIX) :]
            if not is_valid_dump_id(dump_id):  # refused before any filesystem access
                raise not_found(ctx, uri, "not a failed-request id")
            try:
                text = await anyio.to_thread.run_sync(self.dumps(ctx).read_text, dump_id)
            except DumpLookupError as exc:
                raise not_found(ctx, uri, safe_line(str(exc), 200)) from None
        else:
            raise not_found(ctx, uri, "unknown resource")
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=text, mime_type="application/json")])
