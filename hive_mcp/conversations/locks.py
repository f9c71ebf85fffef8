"""One call at a time per conversation, within a process.

Two calls on one conversation are served one after the other: the second
waits, first come first served, for at most the queue timeout (then
`ConversationBusy`), and a cancelled waiter leaves the queue without taking a
turn. This only orders calls inside one process; across processes and
machines the store's compare-and-swap on the tip is what guarantees that no
turn is lost (the loser gets a retryable `ConversationConflict`).

Entries exist only while a conversation is held or awaited, so the table does
not grow with the number of conversations ever seen. Use one instance per
event loop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ..defaults import DEFAULT_QUEUE_TIMEOUT_S
from .errors import ConversationBusy

__all__ = ["ConversationLocks"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        # A semaphore, not a Lock: it hands over to waiters in arrival order like a
        # Lock does, but is not tied to the task that took it.
        self.lock = anyio.Semaphore(1)
        self.users = 0


class ConversationLocks:
    """Per-conversation mutual exclusion with a bounded, cancellable wait."""

    def __init__(self, timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Conversations currently held or awaited."""
        return len(self._entries)

    def waiting(self, conversation_id: str) -> int:
        """Calls queued behind the holder of `conversation_id` (0 when free or held alone)."""
        entry = self._entries.get(conversation_id)
        return 0 if entry is None else max(0, entry.users - 1)

    @asynccontextmanager
    async def hold(self, conversation_id: str, timeout_s: float | None = None) -> AsyncIterator[None]:
        """Run the body as the only holder of `conversation_id`; `ConversationBusy` after the timeout."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        entry = self._entries.get(conversation_id)
        if entry is None:
            entry = self._entries[conversation_id] = _Entry()
        entry.users += 1
        try:
            acquired = False
            try:
                entry.lock.acquire_nowait()  # free: no wait, even with a zero timeout
                acquired = True
            except anyio.WouldBlock:  # held, or handed on to a waiter already queued
                with anyio.move_on_after(math.inf if timeout is None else timeout):
                    await entry.lock.acquire()
                    acquired = True
            if not acquired:
                raise ConversationBusy(conversation_id, timeout)
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[conversation_id]
