"""Progress tokens that are numbers with a fraction (`3.5`): MCP allows any number, the SDK's models only a string or
an integer, and refuse the request (-32602). A leaf: each transport of ours reads it, without the MCP layer.

Such a token is carried through the server as a string of its own (`MARK` and the number, `alias`), which the
SDK's models take, and put back as the number on the wire (`restore_text`, `restore_bytes`) wherever that string
stands as a `progressToken`, so a notification about the request carries the number the client sent. The string
says what it stands for: nothing is remembered per request, and a task's progress, sent long after its request was
answered, is restored the same way.

A client's own string token that starts with either mark (`MARKS`) is carried as `STRING_MARK` and that string,
and put back as the string it was, so no client's string is ever read as the alias of a number. Each is put back
in one pass: what a restore yields is never restored again.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["MARK", "MARKS", "STRING_MARK", "alias", "aliased_params", "restore_bytes", "restore_text"]

MARK = "hive-mcp:number-token:"
"""What starts a progress token that stands for a number with a fraction."""
STRING_MARK = "hive-mcp:string-token:"
"""What starts a progress token that stands for the client's own string starting with a mark."""
MARKS = (MARK, STRING_MARK)

_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_ALIASED = re.compile(
    r'("progressToken"\s*:\s*)"(?:' + re.escape(MARK) + "(" + _NUMBER + ')"|' + re.escape(STRING_MARK) + ")"
)
_ALIASED_BYTES = re.compile(_ALIASED.pattern.encode())
_MARK_BYTES, _STRING_MARK_BYTES = MARK.encode(), STRING_MARK.encode()


def alias(token: float | str) -> str:
    """The string that stands for `token` (a finite float, or a string starting with a mark) while the server
    holds it."""
    return STRING_MARK + token if isinstance(token, str) else MARK + repr(token)


def aliased_params(params: Any) -> bool:
    """Put `alias(token)` in place of `params._meta.progressToken` when that is a finite float (JSON's `3.5`, or
    `3.0`, which the SDK would not take for a token either) or a string starting with a mark; whether it did.
    `params` is changed in place."""
    if not isinstance(params, dict):
        return False
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return False
    token = meta.get("progressToken")
    if isinstance(token, str):
        if not token.startswith(MARKS):
            return False
    elif not isinstance(token, float) or not math.isfinite(token):
        return False
    meta["progressToken"] = alias(token)
    return True


def _restored(match: re.Match[Any]) -> Any:
    """The number an aliased token stands for, or (a string's mark taken off) the opening quote of its string."""
    number = match.group(2)
    if number is not None:
        return match.group(1) + number
    return match.group(1) + ('"' if isinstance(match.group(1), str) else b'"')


def restore_text(text: str) -> str:
    """`text` (JSON) with every aliased `progressToken` the number or the string it stands for."""
    return _ALIASED.sub(_restored, text) if MARK in text or STRING_MARK in text else text


def restore_bytes(data: bytes) -> bytes:
    """`restore_text` for bytes (an SSE event, a JSON body)."""
    return _ALIASED_BYTES.sub(_restored, data) if _MARK_BYTES in data or _STRING_MARK_BYTES in data else data
