"""JSON-RPC as hive-mcp reads and answers it beside the SDK: the error codes it sends of its own, and how deep a
message may nest. A leaf: the transports and the task engine read it without importing the MCP layer."""

from __future__ import annotations

import re

__all__ = ["MAX_JSON_DEPTH", "SHUTDOWN_ERROR_CODE", "nested_deeper_than"]

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
