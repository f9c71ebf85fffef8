"""The write stream a transport of ours gives an MCP session (the SDK's `WriteStream` protocol), as stdio's and
HTTP's share it: each message goes out from the task that sends it, and once closed the stream refuses to send,
raising `anyio.ClosedResourceError` as a memory stream would.

It also takes a notification about a request as plain JSON (`notify`), which the relay sends for every
streamed chunk: the SDK's way builds three models per notification and serializes the message from them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import anyio
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCNotification, RequestId

from .text import compact_json, well_formed

__all__ = ["SessionWriteStream", "notification_json"]


def notification_json(method: str, params: dict[str, Any]) -> str:
    """A JSON-RPC notification as one compact JSON text, as the SDK serializes one. Text that is not valid
    Unicode (half of a surrogate pair) is made so (`text.well_formed`): escaped, the SDK's parser would refuse
    the line, and unescaped it cannot be written."""
    return well_formed(compact_json({"jsonrpc": "2.0", "method": method, "params": params}))


class SessionWriteStream(ABC):
    def __init__(self) -> None:
        self._closed = False

    async def send(self, item: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        await self._deliver(item)

    async def notify(self, related_request_id: RequestId, method: str, params: dict[str, Any]) -> None:
        """Send notification `method` about request `related_request_id`, as `send` would send its
        `SessionMessage`."""
        if self._closed:
            raise anyio.ClosedResourceError
        await self._notify(related_request_id, method, params)

    async def _notify(self, related_request_id: RequestId, method: str, params: dict[str, Any]) -> None:
        """The transport's own part of `notify`: by default the SDK's models, delivered as `send` delivers them;
        a transport that can write the JSON itself overrides this."""
        note = JSONRPCNotification(jsonrpc="2.0", method=method, params=params)
        await self._deliver(SessionMessage(note, metadata=ServerMessageMetadata(related_request_id=related_request_id)))

    @abstractmethod
    async def _deliver(self, item: SessionMessage) -> None:
        """Put `item` on its way (the transport's own part of `send`)."""

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
