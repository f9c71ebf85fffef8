"""Who is calling, as the MCP layer learns it from a request."""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext

from ..tokens import CALLER_STATE_KEY, LOCAL_CALLER

__all__ = ["caller"]


def caller(ctx: ServerRequestContext[Any, Any]) -> str:
    """Who is calling: the name the HTTP guard derived from the bearer token, else `LOCAL_CALLER`."""
    scope = getattr(ctx.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    name = state.get(CALLER_STATE_KEY) if isinstance(state, dict) else None
    return name if isinstance(name, str) and name else LOCAL_CALLER
