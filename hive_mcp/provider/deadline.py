"""A deadline over a stream's reads: one timer for the attempt, not a cancel scope around each chunk.

An anyio cancel scope entered and left around every chunk's read is most of the
provider's own work per chunk at a slow stream's pace, where every line of it
runs cold. `ReadDeadline` arms one loop timer for the whole attempt instead.
When it fires while a read is awaited, it cancels the task awaiting it, and that
read raises `Expired` in place of the cancellation; a read begun after it fired
raises `Expired` at once. A cancellation from anywhere else (the call cancelled,
a cancel scope further out) still propagates as itself, even when both come at
once: the task's count of pending cancellations tells them apart.

The deadline is a `time.monotonic()` instant, the clock asyncio's loop reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Expired", "ReadDeadline"]

T = TypeVar("T")


class Expired(Exception):
    """The deadline ran out before the read returned."""


class ReadDeadline:
    """Reads that must end by `at` (`time.monotonic()` seconds). Close it when the attempt is over."""

    def __init__(self, at: float) -> None:
        self._reader: asyncio.Task[object] | None = None
        self._fired = False
        self._cancelled = False
        """The timer cancelled the reader: that one cancellation is the deadline's, and `read` takes it back."""
        self._timer = asyncio.get_running_loop().call_at(at, self._fire)

    async def read(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s result, or `Expired` once the deadline is past."""
        if self._fired:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise Expired
        task = asyncio.current_task()
        self._reader = task
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if not self._take_back(task):
                raise
            # A canceller further out that found the read already cancelled (an anyio scope) delivers its
            # cancellation on the next turn of the loop: that turn is given to it, so it propagates as itself.
            await asyncio.sleep(0)
            raise Expired from None
        finally:
            self._reader = None
        if self._cancelled:  # the read returned, though cancelled: the deadline is past all the same
            self._take_back(task)
            raise Expired
        return result

    def close(self) -> None:
        self._timer.cancel()
        self._reader = None

    def _take_back(self, task: asyncio.Task[object] | None) -> bool:
        """Withdraw the deadline's cancellation of `task`: whether no other cancellation of it is pending."""
        if not self._cancelled or task is None:
            return False
        self._cancelled = False
        return task.uncancel() == 0

    def _fire(self) -> None:
        self._fired = True
        if self._reader is not None:
            self._cancelled = True
            self._reader.cancel()
