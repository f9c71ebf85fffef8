"""The write stream a transport of ours gives an MCP session (the SDK's `WriteStream` protocol), as stdio's and
HTTP's share it: each message goes out from the task that sends it, and once closed the stream refuses to send,
raising `anyio.ClosedResourceError` as a memory stream would."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import anyio
from mcp.shared.message import SessionMessage

__all__ = ["SessionWriteStream"]


class SessionWriteStream(ABC):
    def __init__(self) -> None:
        self._closed = False

    async def send(self, item: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        await self._deliver(item)

    @abstractmethod
    async def _deliver(self, item: SessionMessage) -> None:
        """Put `item` on its way (the transport's own part of `send`)."""

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
