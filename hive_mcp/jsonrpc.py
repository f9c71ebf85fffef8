"""JSON-RPC as hive-mcp reads and answers it beside the SDK: the error codes it sends of its own, and how deep a
message may nest. A leaf: the transports and the task engine read it without importing the MCP layer."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "BAD_ID", "BATCHLESS_SINCE", "MAX_JSON_DEPTH", "SHUTDOWN_ERROR_CODE", "batch_refused", "nested_deeper_than",
    "plain_refusal", "readable_id", "why_invalid",
]  # fmt: skip

SHUTDOWN_ERROR_CODE = -32000
"""JSON-RPC's "server error" range: what a call or a task gets when this instance shuts down under it."""


MAX_JSON_DEPTH = 100
"""The deepest nesting of arrays and objects a JSON message may have: deeper gets 400 and one line over HTTP,
and a parse error over stdio.

The SDK's parser (pydantic-core) gives up past about 200 levels, which the SDK
answered with a bare 500; no MCP request needs a tenth of that.
"""

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_PAIR = re.compile(rb"\[\]|\{\}")


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether JSON text `body` nests arrays and objects more than `limit` deep.

    Strings go first (their brackets are text), then everything but brackets;
    each pass then removes the innermost pairs, so `limit` passes leave a pair
    only where the nesting was deeper. Every scan runs in the regex engine.
    """
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    for _ in range(limit):
        brackets, n = _PAIR.subn(b"", brackets)
        if not n:
            return False
    return _PAIR.search(brackets) is not None


BAD_ID = "Invalid Request: id must be a string or an integer"
"""A request whose id is null, a bool or a fraction: JSON-RPC has it answered (it is no notification), and MCP
allows no other id."""


def readable_id(value: Any) -> str | int | None:
    """`value` as the id to answer to, or None (id null) when it cannot be one (a bool is no integer here)."""
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


BATCHLESS_SINCE = "2025-06-18"
"""The MCP version that removed JSON-RPC batches (2025-03-26 had them); the SDK, and so this server, takes none in
any version."""


def batch_refused(version: str | None) -> str:
    """Why a batch is refused, in one line. The MCP version in force (None: not known) is named only when it has
    no batches; under one that had them (2025-03-26, which streamable HTTP assumes when a request names none) the
    refusal is this server's own."""
    if version is not None and version >= BATCHLESS_SINCE:  # versions are dates: they compare as text
        return (
            f"Invalid Request: a JSON-RPC batch (a JSON array); MCP {version}, the version in force, has none: "
            "send each message on its own"
        )
    return "Invalid Request: this server does not take JSON-RPC batches (a JSON array); send each message on its own"


def why_invalid(value: Any, version: str | None = None) -> tuple[str, str | int | None]:
    """Why `value`, JSON that the SDK's models refused, is no JSON-RPC message (an invalid request, -32600), in
    one line, and the id to answer it to (None: id null); `version` is the MCP version in force, when known. Each
    transport asks this rather than passing on pydantic's report, which runs to many lines, one section per model
    tried, the input echoed."""
    if isinstance(value, list):
        return batch_refused(version), None
    if not isinstance(value, dict):
        return "Invalid Request: not a JSON object", None
    request_id = readable_id(value.get("id"))
    if "method" not in value and "result" not in value and "error" not in value:
        return "Invalid Request: no method (nor a result or an error)", request_id
    if "method" in value and not isinstance(value["method"], str):  # JSON-RPC's example: `"method": 1`
        return "Invalid Request: method must be a string", request_id
    if value.get("jsonrpc") != "2.0":
        return 'Invalid Request: jsonrpc must be "2.0"', request_id
    if "id" in value and request_id is None:
        return BAD_ID, None
    if "params" in value and not isinstance(value["params"], dict):
        return "Invalid Request: params must be an object", request_id
    return "Invalid Request: not a JSON-RPC 2.0 message", request_id


def plain_refusal(request: bytes, answer: bytes) -> bytes | None:
    """The SDK's 400 `answer` to the body `request`, in one line (`why_invalid`) when the SDK answered with
    pydantic's report; None to send it as it is."""
    try:
        if not json.loads(answer)["error"]["message"].startswith("Validation error"):
            return None
        message, request_id = why_invalid(json.loads(request))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32600, "message": message}}).encode()
