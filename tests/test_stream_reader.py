"""A stream's reader (hive_mcp/calls/stream.py `read_stream`) gives the loop a turn when it has run a slice without
one, and only then: chunks handed over without a wait (litellm's buffer) get turns in between, and chunks a wait
apart, each of which gave the loop its turns already, cost no extra turn each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio

from hive_mcp.calls.stream import READER_SLICE_S, StreamState, read_stream
from hive_mcp.provider.events import StreamEvent, TextDeltaEvent

EVENTS = 4
BUFFERED = 8


async def order_of_reads_and_turns(events: AsyncIterator[StreamEvent], log: list[str]) -> list[str]:
    """Read `events`; after each, the nudge asks the loop for a turn: what came first, the turn or the next read."""
    loop = asyncio.get_running_loop()

    async def nudge() -> None:
        log.append("event")
        loop.call_soon(log.append, "loop turn")

    await read_stream(events, StreamState(), nudge)
    return log


async def test_chunks_handed_over_without_a_wait_give_the_loop_a_turn_once_a_slice_has_run() -> None:
    log: list[str] = []

    async def buffered() -> AsyncIterator[StreamEvent]:
        for n in range(BUFFERED):
            if n:
                log.append("next read")
            started = time.monotonic()
            while time.monotonic() - started < READER_SLICE_S / 2:  # a chunk's parse, half a slice, and no wait
                pass
            yield TextDeltaEvent(f"{n} ")

    order = await order_of_reads_and_turns(buffered(), log)
    runs = "".join("r" if what == "next read" else "t" if what == "loop turn" else "" for what in order).split("t")
    assert order.count("next read") == BUFFERED - 1
    assert max(len(run) for run in runs) <= 3, order  # the first read's half slice, then a turn every slice


async def test_chunks_a_wait_apart_cost_no_extra_turn_of_the_loop_each() -> None:
    log: list[str] = []
    arrived = [anyio.Event() for _ in range(EVENTS)]

    async def slow() -> AsyncIterator[StreamEvent]:
        for n in range(EVENTS):
            if n:
                log.append("next read")
            with anyio.fail_after(10):
                await arrived[n].wait()  # the upstream's next chunk, a wait away
            yield TextDeltaEvent(f"{n} ")

    async def upstream() -> None:
        for event in arrived:
            await asyncio.sleep(2 * READER_SLICE_S)
            event.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream)
        order = await order_of_reads_and_turns(slow(), log)
    reads = [i for i, what in enumerate(order) if what == "next read"]
    assert all(order[i - 1] == "event" for i in reads), order
