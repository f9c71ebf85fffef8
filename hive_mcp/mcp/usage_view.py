"""`hive://usage`: what has been spent and what each budget has left, as an MCP resource.

Over HTTP with tokens a caller sees only its own spend and budgets, unless the
config names it in `hive_mcp: admins:`; `local` (stdio, or HTTP without tokens:
the operator's own machine) sees everyone's. A settled call changes it; the
notifications are throttled to one a second (`Throttle`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from mcp_types import INTERNAL_ERROR, Resource

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from ..spend import Spend
from ..spend.usage import UsageReport
from ..tokens import owner_scope
from .callers import caller
from .routes import Route

__all__ = ["USAGE_URI", "usage_route", "usage_source"]

USAGE_URI = "hive://usage"


def usage_source(spend: Spend, who: str | None = None) -> Callable[[], UsageReport]:
    """The dashboard's Spend section (`Sources.spend`): `who`'s usage (None: everyone's, as the operator sees it)."""
    return lambda: spend.usage(who)


def usage_route(spend: Spend) -> Route:
    """`hive://usage`, as the caller may see it."""

    async def read(ctx: ServerRequestContext[Any, Any], uri: str, _: str) -> str:
        who = owner_scope(caller(ctx), spend.admins)
        try:
            report = await anyio.to_thread.run_sync(usage_source(spend, who))
        except Exception as exc:  # noqa: BLE001 - one line naming the ledger, never a traceback
            raise MCPError(code=INTERNAL_ERROR, message=f"the spend ledger ({spend.backend.name}) did not answer: "
                           f"{type(exc).__name__}") from None  # fmt: skip
        return report.model_dump_json(indent=2)

    usage = Resource(
        uri=USAGE_URI, name="usage", title="Spend and budgets", mime_type="application/json",
        description="Spend today, this month and over 30 days by model group and caller; budgets left.",
    )  # fmt: skip
    return Route(USAGE_URI, usage, read)
