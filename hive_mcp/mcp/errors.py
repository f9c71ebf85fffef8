"""Error text that leaves the server: one line, no traceback, no key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_types import INVALID_PARAMS, CallToolResult, TextContent
from pydantic import ValidationError

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from ..redact import redact
from ..text import one_line, short
from .constants import MAX_ERROR_CHARS, dump_uri


class ArgumentError(ValueError):
    """Bad tool arguments; `str()` is one line naming the field."""


class InnerError(ValueError):
    """A check's failure at a place inside the field it checks: `at` continues the field's path, so the line names
    `messages[0].content[1].type` rather than the whole `messages[0].content` (`describe_validation`)."""

    def __init__(self, at: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.at = at


def json_type(v: Any) -> str:
    """What a JSON value is, in words, for messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


def safe_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Drop anything key-shaped, collapse whitespace, and cap the length."""
    return one_line(redact(text), limit)


def field_path(loc: tuple[int | str, ...]) -> str:
    """Where a value is in a call's arguments, as errors name it: `messages[0].content`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_validation(exc: ValidationError) -> str:
    """The first three errors of `exc`, each naming its field, on one line."""
    parts: list[str] = []
    for err in exc.errors(include_url=False)[:3]:
        inner = (err.get("ctx") or {}).get("error")
        at = inner.at if isinstance(inner, InnerError) else ()
        loc = field_path((*err["loc"], *at))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown argument {loc}")
            continue
        if err["type"] == "too_short" and (err.get("ctx") or {}).get("min_length") == 1:
            msg = "must not be empty"
        if err["type"] == "literal_error" or (err["type"].endswith("_type") and not isinstance(err["input"], (dict, list))):
            msg += f" (got {short(err['input'], 40)})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def failure_text(line: str, dump_id: str | None) -> str:
    """The one line an upstream failure becomes: what happened, and where the dump is."""
    text = safe_line(line)
    if dump_id:
        text += f" [request recorded: {dump_uri(dump_id)}]"
    return text


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def unknown_names(tools: frozenset[str], prompts: frozenset[str] = frozenset()) -> Any:
    """A middleware giving the spec's protocol errors where the SDK gives none or another (-32602, one line): a
    `tools/call`, `prompts/get` or prompt `completion/complete` naming a tool or prompt the server does not have
    (the SDK answers an unknown tool with a tool result a host hands the model as if the tool had run, an
    unknown prompt with code 0, its completion with an empty list), and a cursor on `tools/list` or
    `prompts/list`, which the server answers on one page, so makes no cursor."""
    kinds = {"tools/call": ("tool", tools), "prompts/get": ("prompt", prompts)}
    whole = {"tools/list": "tools", "prompts/list": "prompts"}

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        kind, names = kinds.get(ctx.method, ("", None))
        ref = params.get("ref")
        if ctx.method == "completion/complete" and isinstance(ref, Mapping) and ref.get("type") == "ref/prompt":
            kind, names, params = "prompt", prompts, ref
        if names is not None and params.get("name") not in names:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown {kind}: {short(params.get('name'), 100)}")
        if ctx.method in whole and params.get("cursor") is not None:
            raise MCPError(code=INVALID_PARAMS, message=f"Invalid cursor: the {whole[ctx.method]} are one page; "
                           "list them with no cursor")  # fmt: skip
        return await call_next(ctx)

    return middleware
