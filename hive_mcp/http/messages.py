"""The JSON-RPC messages POSTed to the streamable HTTP endpoint (and the legacy SSE transport's, `MESSAGE_PATH`),
checked before the SDK's app reads them, where the SDK would answer wrongly or not at all:

- (streamable HTTP) an `MCP-Protocol-Version` header naming a version this server does not speak, on a request of
  any method: the SDK takes it for the 2026 era and refuses a POST for its missing `_meta` envelope, a GET or a
  DELETE with 405; here it is refused naming the header, the value and the versions spoken (400, -32022, the SDK's
  code for an unsupported version, with its `data`);
- a batch (a JSON array): refused in one line, naming the MCP version in force where it has no batches (400, -32600);
- a request whose id cannot be one (null, a bool, a fraction): the SDK's models read it as a notification and the
  SDK answered 202 with nothing; JSON-RPC answers it, as stdio does (400, -32600, id null);
- a progress token with a fraction (`3.5`), which MCP allows and the SDK's models refuse: carried to the SDK as
  a string of its own and put back as the number (`number_tokens`) in its request's response and in every event
  stream, so each notification about the request carries the number, on the request's event stream or the
  session's (legacy SSE: `SSE_PATH`); a string token that reads like such an alias is carried and put back the
  same way, as the string it was.
  A body sent with a Content-Length holds one response, never a notification: no length changes.

Each check looks for its key in the body first (`_worth_parsing`); only a body where one is found is parsed here.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from mcp_types import INVALID_REQUEST
from mcp_types.jsonrpc import UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from ..asgi import MCP_PATH, MESSAGE_PATH, SSE_PATH, App, Message, Receive, Scope, Send, header, peer, respond
from ..jsonrpc import BAD_ID, batch_refused, readable_id
from ..number_tokens import MARKS, aliased_params, restore_bytes

__all__ = ["MessageChecks"]

logger = logging.getLogger("hive_mcp.http")

SPOKEN_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
_VERSION_HEADER = b"mcp-protocol-version"
_SHOWN_CHARS = 64
"""How much of a header value a refusal quotes."""

_BATCH = re.compile(rb"\s*\[")
_ODD_ID = (b'"id"', re.compile(rb"\s*:\s*(?:null|true|false|-?[0-9]+[.eE])"))
"""An id that is null, a bool, or a number with a fraction or an exponent ..."""
_MARKED = b"|".join(re.escape(m.encode()) for m in MARKS)
_ODD_TOKEN = (b'"progressToken"', re.compile(rb'\s*:\s*(?:-?[0-9]+[.eE]|"(?:' + _MARKED + rb'|[^"]*\\))'))
"""... and a progress token that is such a number, or a string starting with one of `number_tokens.MARKS` (or
holding an escape, which may spell one)."""


_PATHS = (MCP_PATH, MESSAGE_PATH, SSE_PATH)


class MessageChecks:
    """ASGI middleware in front of the SDK's app: the checks above, for POSTs to `MCP_PATH` and `MESSAGE_PATH`, and
    aliased progress tokens put back in every response of the MCP paths."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope.get("type") != "http" or path not in _PATHS:
            await self.app(scope, receive, send)
            return
        # Legacy SSE (MCP 2024-11-05) has no version header: its version is not known here.
        version = _text(header(scope, _VERSION_HEADER)) if path == MCP_PATH else None
        unspoken = version if version is not None and version not in SPOKEN_VERSIONS else None
        post = scope.get("method") == "POST"
        if unspoken is not None and not post:
            await _refuse(scope, send, _version_refusal(unspoken, None))
            return
        if not post or path == SSE_PATH:  # an event stream: what it carries is not known
            await self.app(scope, receive, _restoring(send))
            return
        received, body = await _read_body(receive)
        if body is None:  # the client left, or a layer outside answered already: the app sees what came
            await self.app(scope, _replaying(received, receive), send)
            return
        if unspoken is not None:
            await _refuse(scope, send, _version_refusal(unspoken, _parsed(body)))
            return
        if _worth_parsing(body):
            value = _parsed(body)
            refusal = _refusal(value, version)
            if refusal is not None:
                await _refuse(scope, send, refusal)
                return
            if isinstance(value, dict) and aliased_params(value.get("params")):
                body = json.dumps(value, separators=(",", ":")).encode()
                scope = _with_length(scope, len(body))
                # Only this request's answer and notifications can carry its alias: no other POST's sends pay
                # for a look at each event (a streamed call's are many).
                send = _restoring(send)
        whole = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replaying([whole], receive), send)


def _worth_parsing(body: bytes) -> bool:
    """Whether `body` may be one of the messages above: a batch, or a key of `_ODD_ID` or `_ODD_TOKEN` followed
    by such a value. Each key is found by `bytes.find`, and the value matched where it stands: a regular
    expression searching a body of a megabyte would take some 25 ms."""
    if _BATCH.match(body):
        return True
    for key, value in (_ODD_ID, _ODD_TOKEN):
        at = body.find(key)
        while at != -1:
            if value.match(body, at + len(key)):
                return True
            at = body.find(key, at + len(key))
    return False


def _refusal(value: Any, version: str | None) -> dict[str, Any] | None:
    """The JSON-RPC error answering `value` (the body parsed; None when it is no JSON: the SDK says so), if this
    layer answers it."""
    if isinstance(value, list):
        return _error(None, INVALID_REQUEST, batch_refused(version))
    if isinstance(value, dict) and isinstance(value.get("method"), str) and "id" in value:
        if readable_id(value["id"]) is None:
            return _error(None, INVALID_REQUEST, BAD_ID)
    return None


def _version_refusal(version: str, value: Any) -> dict[str, Any]:
    shown = version if len(version) <= _SHOWN_CHARS else version[:_SHOWN_CHARS] + "..."
    message = (
        f"Unsupported protocol version: MCP-Protocol-Version header {shown!r}; this server speaks "
        f"{', '.join(SPOKEN_VERSIONS)}"
    )
    request_id = readable_id(value.get("id")) if isinstance(value, dict) else None
    error = _error(request_id, UNSUPPORTED_PROTOCOL_VERSION, message)
    error["error"]["data"] = {"supported": list(SPOKEN_VERSIONS), "requested": version}
    return error


def _error(request_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _refuse(scope: Scope, send: Send, answer: dict[str, Any]) -> None:
    logger.info("400 for %s %s from %s: %s", scope.get("method"), scope.get("path"), peer(scope),
                answer["error"]["message"])
    await respond(send, 400, answer)


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages received and the whole body; None for the body when something else came before its end."""
    received: list[Message] = []
    while True:
        message = await receive()
        received.append(message)
        if message.get("type") != "http.request":
            return received, None
        if not message.get("more_body", False):
            if len(received) == 1:
                return received, message.get("body", b"")
            return received, b"".join(m.get("body", b"") for m in received)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive giving `messages` first, then what `receive` gives (a disconnect, later)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _with_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _restoring(send: Send) -> Send:
    """`send`, with each response body's aliased progress tokens the numbers they stand for."""

    async def restoring(message: Message) -> None:
        if message.get("type") == "http.response.body":
            body = message.get("body", b"")
            restored = restore_bytes(body)
            if restored is not body:
                message = {**message, "body": restored}
        await send(message)

    return restoring
