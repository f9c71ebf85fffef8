"""Resources routed by URI template: one table, consulted by `resources/read`, `resources/list`,
`resources/templates/list` and by subscriptions.

Each resource is one `Route`, declared beside what it serves (resources.py, conversation_views.py,
usage_view.py): its URI template, its listing entry and its reader. A template is a fixed URI, or one
ending in `{var}` (the rest of the URI, slashes included: a model group's name may hold one), or in
`{?var}` (an optional query). A URI no route matches reads as not found, like an id nothing has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

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

from ..text import short
from .constants import RESOURCE_NOT_FOUND_LEGACY

__all__ = ["Pages", "Reader", "ResourceRouter", "Route", "not_found"]

Reader = Callable[[ServerRequestContext[Any, Any], str, str], Awaitable[str | ReadResourceResult]]
"""Reads one resource: (ctx, uri, the template's variable, or "" for a fixed URI) -> its JSON text, or a
whole result. Raises `not_found` for what it does not hold (or the caller may not see)."""

Pages = Callable[[ServerRequestContext[Any, Any], str | None], Awaitable[tuple[list[Resource], str | None]]]
"""One page of listed instances after the fixed resources, for a cursor: (resources, next cursor)."""


def not_found(ctx: ServerRequestContext[Any, Any], uri: str, why: str) -> MCPError:
    """The one-line resource-not-found error of the caller's protocol era."""
    legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
    code = RESOURCE_NOT_FOUND_LEGACY if legacy else INVALID_PARAMS
    return MCPError(code=code, message=f"Resource not found: uri {short(uri, 80)}: {why}", data={"uri": uri})


@dataclass(frozen=True)
class Route:
    """One resource or resource template: the URIs it answers, how it is listed, how it is read.

    `owned` routes name one caller's thing (a dump, a conversation): subscribing to one is allowed
    only to a caller who may read it, so what a caller cannot read it cannot hear of either."""

    template: str
    entry: Resource | ResourceTemplate
    read: Reader
    owned: bool = False

    def match(self, uri: str) -> str | None:
        """The template's variable in `uri` ("" for a fixed URI), or None when `uri` is not this route's."""
        head, brace, _ = self.template.partition("{")
        if not brace:
            return "" if uri == head else None
        if self.template[len(head) + 1] == "?":  # an optional query
            if uri == head:
                return ""
            return uri[len(head) + 1 :] if uri.startswith(head + "?") else None
        return uri[len(head) :] if uri.startswith(head) else None


class ResourceRouter:
    """The resource handlers of one server over its table of routes (first match wins; the listing follows
    the table's order), and `pages`, the instances listed after the fixed resources, by cursor."""

    def __init__(self, routes: Sequence[Route], pages: Pages) -> None:
        self.routes = tuple(routes)
        self.pages = pages

    def route(self, ctx: ServerRequestContext[Any, Any], uri: str) -> tuple[Route, str]:
        """The first route that answers `uri`, and its variable; not found when none does."""
        for route in self.routes:
            if (value := route.match(uri)) is not None:
                return route, value
        raise not_found(ctx, uri, "unknown resource")

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        """The fixed resources lead the first page; the cursor pages the instances alone."""
        items, next_cursor = await self.pages(ctx, params.cursor)
        fixed = [r.entry for r in self.routes if isinstance(r.entry, Resource)] if params.cursor is None else []
        return ListResourcesResult(resources=[*fixed, *items], next_cursor=next_cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourceTemplatesResult:
        """The templates, all on one page: this listing makes no cursor, so any cursor is not one of its own."""
        if params.cursor is not None:
            raise MCPError(
                code=INVALID_PARAMS, message="Invalid cursor: the templates are one page; list them with no cursor",
                data={"cursor": short(params.cursor)},
            )  # fmt: skip
        entries = [r.entry for r in self.routes if isinstance(r.entry, ResourceTemplate)]
        return ListResourceTemplatesResult(resource_templates=entries)

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        uri = params.uri
        route, value = self.route(ctx, uri)
        read = await route.read(ctx, uri, value)
        if isinstance(read, ReadResourceResult):
            return read
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=read, mime_type="application/json")])

    async def check_own(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        """Raise the read's not-found error unless `uri` is a resource of this server and, when an owned
        route's, this caller's to read: what the caller cannot read, it cannot hear of either."""
        route, value = self.route(ctx, uri)
        if route.owned:
            await route.read(ctx, uri, value)
