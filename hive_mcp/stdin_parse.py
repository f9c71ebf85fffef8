"""stdin's lines as JSON-RPC messages for the stdio transport's session, and the answers to the lines the
session would not answer.

The SDK's session answers nothing for a line that is not a message (it logs it, at debug), so a client
would wait forever for the reply to a request it sent. JSON-RPC 2.0 §5 has every request answered: a line
that is not JSON is a parse error (-32700, id null); JSON that is not a valid request is an invalid
request (-32600), to its id when that can be read, else to id null. A notification (a method's name, no
id) and a response (a result or an error, no method) are answered by no one, however malformed: they go
to the session as the validation error, as the SDK's own transport hands them over.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    RequestId,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from .jsonrpc import BAD_ID, MAX_JSON_DEPTH, nested_deeper_than, why_invalid
from .number_tokens import aliased_params

__all__ = ["LineParser"]

logger = logging.getLogger("hive_mcp")


class LineParser:
    """Parses one session's stdin lines; `parse` gives the message, or the error to answer the line with.

    Each line is parsed by pydantic straight from the JSON text, as the SDK's own transport does; a line it
    refuses is parsed again by the standard library (`_parsed_slowly`). Of the lines answered here, the first
    is logged as a warning, later ones at debug: a client that writes garbage floods nothing. A line's length
    is logged, never its content (it may hold anything, a key included).
    """

    def __init__(self) -> None:
        self.answered = 0
        self.version: str | None = None
        """The MCP version in force, as the requests read so far tell it (None: none told yet)."""

    def parse(self, line: str) -> SessionMessage | Exception | JSONRPCError:
        message: SessionMessage | Exception | JSONRPCError
        try:
            message = parsed = SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
        except ValidationError as exc:
            message = _parsed_slowly(line, exc, self.version)
        else:
            if isinstance(parsed.message, JSONRPCNotification):  # few: each is read again (`_with_its_id`)
                with contextlib.suppress(ValueError, RecursionError):
                    message = _with_its_id(parsed, json.loads(line))
        if isinstance(message, SessionMessage) and isinstance(message.message, JSONRPCRequest):
            self._note_version(message.message)
            aliased_params(message.message.params)  # a progress token of 3.5 (`number_tokens`)
        elif isinstance(message, JSONRPCError):
            self._log(line, message.error)
        return message

    def _note_version(self, request: JSONRPCRequest) -> None:
        """The version `request` puts in force: the one an `initialize` asks for, or the server's latest when it
        asks for one the server does not speak (the SDK answers with that); a 2026 request's own, in its `_meta`."""
        params = request.params or {}
        if request.method == "initialize":
            asked = params.get("protocolVersion")
            self.version = asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
            return
        meta = params.get("_meta")
        told = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        if told in MODERN_PROTOCOL_VERSIONS:
            self.version = told

    def _log(self, line: str, error: ErrorData) -> None:
        self.answered += 1
        first = self.answered == 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "stdin: answered a line of %d bytes with error %d: %s%s",
            len(line.rstrip("\n").encode("utf-8", "replace")), error.code, error.message,
            " (a JSON-RPC message is one JSON object a line; is something else writing to this server's stdin?)"
            if first else f" [{self.answered} so far]",
        )  # fmt: skip


def _parsed_slowly(
    line: str, refused: ValidationError, version: str | None
) -> SessionMessage | Exception | JSONRPCError:
    """A line pydantic refused, parsed by the standard library: the message, the answer to send, or `refused`
    (`version`: the MCP version in force, for the answer to a batch).

    pydantic's JSON parser refuses a lone surrogate escape (JSON's `\\ud800`, half of a UTF-16 pair) anywhere
    in the line; `json.loads` takes it, so such a request reaches its handler, which says what is wrong (a
    tool names the argument: `args._check_unicode`), and a reply that echoes the text is written with U+FFFD
    in its place (`stdio.StdoutMessages`). Nesting past `MAX_JSON_DEPTH`, which pydantic refuses too, is
    refused here before `json.loads` recurses into it.
    """
    if nested_deeper_than(line.encode("utf-8", "replace"), MAX_JSON_DEPTH):
        return _error(None, PARSE_ERROR, f"Parse error: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError, as is an integer too long to read
        # JSON-RPC 2.0: the id of a request that cannot be parsed cannot be known, and its error's id is null.
        return _error(None, PARSE_ERROR, "Parse error: the line is not JSON")
    try:
        message = SessionMessage(jsonrpc_message_adapter.validate_python(value, by_name=False))
    except ValidationError:
        pass
    else:
        return _with_its_id(message, value)
    if isinstance(value, dict):
        if isinstance(value.get("method"), str) and "id" not in value:  # a notification: no one answers it
            return refused
        if "method" not in value and ("result" in value or "error" in value):  # a response: nobody waits on it
            return refused
    message, request_id = why_invalid(value, version)  # a batch is one invalid request: none of it runs
    return _error(request_id, INVALID_REQUEST, message)


def _with_its_id(message: SessionMessage, value: Any) -> SessionMessage | JSONRPCError:
    """`message` (parsed from `value`), or the answer to it when the SDK's models took for a notification a
    request with an id they cannot read (null, a bool, a fraction), dropping the id: the session would answer
    nothing, yet JSON-RPC has a message with an id answered."""
    if isinstance(message.message, JSONRPCNotification) and isinstance(value, dict) and "id" in value:
        return _error(None, INVALID_REQUEST, BAD_ID)
    return message


def _error(request_id: RequestId | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
