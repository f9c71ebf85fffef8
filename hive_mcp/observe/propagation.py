"""Trace context from the HTTP `traceparent` header, for a request whose `_meta` carries none.

The MCP SDK's own middleware opens the server span of each request (`tools/call complete`) under the
`traceparent` of its `_meta` (the 2026-07-28 revision), and under the ambient context when there is none. This
middleware runs before it and makes the HTTP request's `traceparent`/`tracestate` headers that ambient context,
so a client that traces at the HTTP layer continues into hive-mcp too; `_meta` still wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate

__all__ = ["HttpTraceContext"]

_FIELDS = ("traceparent", "tracestate")


class HttpTraceContext:
    """Context-tier MCP middleware (`(ctx, call_next)`); put it first, outside the SDK's OpenTelemetry one."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        meta = ctx.meta
        headers = getattr(ctx.request, "headers", None)
        if (isinstance(meta, Mapping) and meta.get("traceparent")) or headers is None or not headers.get(
            "traceparent"
        ):
            return await call_next(ctx)
        carrier = {name: headers[name] for name in _FIELDS if headers.get(name)}
        token = context.attach(propagate.extract(carrier))
        try:
            return await call_next(ctx)
        finally:
            context.detach(token)
