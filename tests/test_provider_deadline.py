"""The stream's read deadline: one timer per attempt that ends a read with `Expired`, and leaves every other
cancellation to propagate as itself (the provider's stalled-stream test covers it end to end)."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from hive_mcp.provider.deadline import Expired, ReadDeadline

SOON_S = 0.05
LATER_S = 3600.0
WAIT_S = 10.0
"""Bounds a read the deadline should have ended: a deadline that never fires fails the test, not hangs it."""


async def stall() -> None:
    await asyncio.Event().wait()


async def test_a_read_still_waiting_at_the_deadline_raises_expired_and_leaves_the_task_uncancelled() -> None:
    deadline = ReadDeadline(time.monotonic() + SOON_S)
    with anyio.fail_after(WAIT_S), pytest.raises(Expired):
        await deadline.read(stall())
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # the task goes on awaiting: no cancellation is left pending for it


async def test_a_read_begun_after_the_deadline_raises_expired_without_running_what_it_was_given() -> None:
    deadline = ReadDeadline(time.monotonic() + SOON_S)
    with anyio.fail_after(WAIT_S), pytest.raises(Expired):
        await deadline.read(stall())
    ran = False

    async def chunk() -> str:
        nonlocal ran
        ran = True
        return "text"

    with pytest.raises(Expired):
        await deadline.read(chunk())
    assert not ran


async def test_a_cancellation_from_further_out_propagates_as_itself() -> None:
    deadline = ReadDeadline(time.monotonic() + LATER_S)
    with anyio.move_on_after(SOON_S) as scope:
        await deadline.read(stall())
    deadline.close()
    assert scope.cancelled_caught


async def test_a_cancellation_from_further_out_at_the_deadline_itself_is_not_taken_for_it() -> None:
    at = time.monotonic() + SOON_S
    deadline = ReadDeadline(at)
    scope = anyio.CancelScope(deadline=at)  # both timers due in the same turn of the loop
    with scope:
        await deadline.read(stall())
    assert scope.cancelled_caught
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_closed_deadline_ends_no_read() -> None:
    deadline = ReadDeadline(time.monotonic() + SOON_S)
    deadline.close()
    assert await deadline.read(asyncio.sleep(2 * SOON_S, result="text")) == "text"


async def test_reads_that_return_in_time_return_their_result() -> None:
    deadline = ReadDeadline(time.monotonic() + LATER_S)
    assert [await deadline.read(asyncio.sleep(0, result=n)) for n in range(3)] == [0, 1, 2]
    deadline.close()
