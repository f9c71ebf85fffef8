"""How a call's progress leaves it while it runs: the transport supplies an `Observer`, the steps tell it.

The call layer says when a call waits (for a slot, for its conversation, on the
model) and hands over a stream's `StreamState` while it is read; what that
becomes on the wire (MCP progress notifications, heartbeats) is the observer's
business. The default observer sends nothing: a call made with no one watching.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stream import Nudge, StreamState

__all__ = ["Observer"]


async def _unheard() -> None:
    """The silent observer's nudge: nothing to send."""


class Observer:
    """Told of a call's waits and its stream; this base is silent."""

    def branch(self) -> Observer:
        """An observer for one of several calls made for this one at once (a fan-out's): its waits and its
        stream are its own, and leave the way this observer's do."""
        return Observer()

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """The body waits (queued, or on the model): an observer may keep the client informed meanwhile."""
        yield

    @asynccontextmanager
    async def relaying(self, state: StreamState) -> AsyncIterator[Nudge]:
        """The body reads a stream into `state` (and marks it done), awaiting the `Nudge` yielded here after each
        event; an observer relays it, and is done relaying when this exits."""
        yield _unheard
