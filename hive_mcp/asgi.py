"""What every HTTP layer shares, the transport's (`http/`) and those of the metrics, the overhead header and the
dashboard: the ASGI shapes, the paths they tell apart, a small JSON reply and the line a refused credential
logs. A leaf: it imports nothing of the package, so a layer needing only these loads none of the others."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["HEALTH_PATH", "MCP_PATH", "MESSAGE_PATH", "SSE_PATH", "App", "header", "log_refusal", "peer", "respond"]

logger = logging.getLogger("hive_mcp.http")

HEALTH_PATH = "/healthz"
MCP_PATH = "/mcp"  # streamable HTTP
SSE_PATH = "/sse"  # legacy HTTP+SSE: the event stream ...
MESSAGE_PATH = "/messages/"  # ... and where clients POST

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
App = Callable[[Scope, Receive, Send], Any]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def peer(scope: Scope) -> str:
    """`address:port` of the client, for log lines."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


async def respond(
    send: Send,
    status: int,
    body: dict[str, Any] | list[Any],
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
    more_body: bool = False,
) -> None:
    """A JSON response. With `more_body` the response stays open: the caller ends it with an empty body."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else payload, "more_body": more_body})


def log_refusal(scope: Scope, why: str) -> None:
    """The line for a request refused for want of a valid credential. At DEBUG: anyone who reaches the port
    can cause one per request, so at any level that is shown by default it would be theirs to flood."""
    logger.debug("401 for %s %s from %s: %s", scope.get("method"), scope.get("path"), peer(scope), why)
