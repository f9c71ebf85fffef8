"""`hive://usage`: what has been spent and what each budget has left, as an MCP resource.

Over HTTP with tokens a caller sees only its own spend and budgets, unless the
config names it in `hive_mcp: admins:`; `local` (stdio, or HTTP without tokens:
the operator's own machine) sees everyone's. A settled call changes it; the
notifications are throttled to one a second (`Throttle`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp_types import (
    INTERNAL_ERROR,
    ListResourcesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    TextResourceContents,
)

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from ..spend import Spend
from ..spend.usage import UsageReport
from ..tokens import owner_scope
from .conversations import caller

Handler = Callable[[ServerRequestContext[Any, Any], Any], Awaitable[Any]]

__all__ = ["USAGE_URI", "usage_resources", "usage_source", "visible_to"]

USAGE_URI = "hive://usage"


def visible_to(spend: Spend, name: str) -> str | None:
    """Whose spend `name` may see: None for everyone's (local, admins), else its own name."""
    return owner_scope(name, spend.admins)


def usage_source(spend: Spend, who: str | None = None) -> Callable[[], UsageReport]:
    """The dashboard's Spend section (`Sources.spend`): `who`'s usage (None: everyone's, as the operator sees it)."""
    return lambda: spend.usage(who)


def usage_resources(spend: Spend, handlers: tuple[Handler, Handler, Handler]) -> tuple[Handler, Handler, Handler]:
    """`handlers` (list, templates, read) with `hive://usage` added."""
    list_inner, templates, read_inner = handlers

    async def list_resources(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> ListResourcesResult:
        result = await list_inner(ctx, params)
        if params.cursor is None:
            result.resources.insert(1, Resource(
                uri=USAGE_URI, name="usage", title="Spend and budgets", mime_type="application/json",
                description="Spend today, this month and over 30 days by model group and caller; budgets left.",
            ))  # fmt: skip
        return result

    async def read_resource(ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams) -> ReadResourceResult:
        if params.uri != USAGE_URI:
            return await read_inner(ctx, params)
        who = visible_to(spend, caller(ctx))
        try:
            report = await anyio.to_thread.run_sync(
                lambda: spend.usage(who)
            )
        except Exception as exc:  # noqa: BLE001 - one line naming the ledger, never a traceback
            raise MCPError(code=INTERNAL_ERROR, message=f"the spend ledger ({spend.backend.name}) did not answer: "
                           f"{type(exc).__name__}") from None  # fmt: skip
        text = report.model_dump_json(indent=2)
        return ReadResourceResult(contents=[TextResourceContents(uri=USAGE_URI, text=text, mime_type="application/json")])

    return list_resources, templates, read_resource
