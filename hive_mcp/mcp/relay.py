"""Progress while a call waits: heartbeats, and `stream_complete`'s text relayed as it is written.

A call's progress notifications are numbered by one `ProgressSender`, so the
value increases over the whole call, from the queue to the last chunk. Without a
progress token in the request, sending is a no-op (the SDK drops it).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..calls.observer import Observer
from ..calls.stream import Nudge, StreamState, now
from ..sdk_compat import request_lane
from .constants import MOST_PROGRESS_INTERVAL_S, PROGRESS_INTERVAL_S, logger

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

Report = Callable[[float, "str | None"], Awaitable[None]]
"""Sends one progress notification: (progress, message)."""


def progress_report(ctx: Context) -> Report:
    """How the request of `ctx` sends its progress: as plain JSON through the transport's write stream when it is
    one of ours (`sdk_compat.request_lane`), else by the SDK's `report_progress`. Either way a notification the
    transport cannot take any more (the client gone, the request over) is dropped, as the SDK drops it."""
    lane = request_lane(ctx.request_context.session)
    if lane is None:

        async def report_by_sdk(progress: float, message: str | None) -> None:
            await ctx.report_progress(progress, None, message)

        return report_by_sdk

    async def report(progress: float, message: str | None) -> None:
        if not lane.open:
            return
        params: dict[str, object] = {"progressToken": lane.progress_token, "progress": progress}
        if message is not None:
            params["message"] = message
        try:
            await lane.stream.notify(lane.request_id, "notifications/progress", params)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("progress dropped: the transport is closed")

    return report


class ProgressSender:
    """Numbers one call's progress notifications and remembers when the last one left."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.sent = 0
        self.last_sent = now()
        # A heartbeat and the relay's text never overtake each other. asyncio's lock is taken without yielding
        # the loop when free (a yield would cost every notification one more turn of the loop before it leaves),
        # and with less code than anyio's, which runs cold for every chunk of a slow stream.
        self._lock = asyncio.Lock()

    async def send(self, message: str | None) -> None:
        async with self._lock:
            self.sent += 1
            await self._report(self.sent, message)
            self.last_sent = now()

    async def beat_every(self, interval_s: float) -> None:
        """Send a heartbeat (no message) whenever nothing was sent for `interval_s`; runs until cancelled."""
        while True:
            await anyio.sleep(max(0.0, self.last_sent + interval_s - now()))
            if now() >= self.last_sent + interval_s:
                await self.send(None)


@asynccontextmanager
async def heartbeats(progress: ProgressSender, interval_s: float) -> AsyncIterator[anyio.CancelScope]:
    """Keep the call alive with heartbeats while the body waits (in the queue, or on the model).

    Yields the heartbeats' own cancel scope: cancel it to stop them early (when a
    relay takes over). The body's exception is raised as itself after the
    heartbeat task is gone, not wrapped in the task group's ExceptionGroup.
    """
    error: Exception | None = None
    beating = anyio.CancelScope()

    async def beat() -> None:
        with beating:
            await progress.beat_every(interval_s)

    async with anyio.create_task_group() as tg:
        tg.start_soon(beat)
        try:
            yield beating
        except Exception as exc:
            error = exc
        finally:
            beating.cancel()
    if error is not None:
        raise error


@dataclass
class Pacer:
    """The least time between two notifications with text: `base_s` while the loop has time to spare, more while
    it has not.

    Each notification costs the loop a JSON-RPC message and an SSE event whatever
    it holds, so a server with many streams spends much of its time on them. Two
    signs that the loop has no time to spare widen the interval, each on its own:
    - lateness: every relay reports how late it woke (`late`), text waiting for
      the relay to run or a wait that overran its end. The interval follows a
      moving average of it, times `GROWTH`;
    - load: the share of wall time the loop's thread spent on the CPU (`load`,
      read at each report, over windows of at least `WINDOW_S`). From `BUSY_FROM`
      the interval grows, to `most_s` at `BUSY_FULL`. A loop busy in short turns
      wakes everyone on time, so lateness alone does not show it.
    Either way each notification carries all the text since the last, and the
    CPU that frees is the loop's again. Once both signs are gone, the interval is back at `base_s`.
    """

    base_s: float = PROGRESS_INTERVAL_S
    most_s: float = MOST_PROGRESS_INTERVAL_S
    lag_s: float = 0.0
    busy: float = 0.0
    """The moving average of the loop thread's share of wall time on the CPU."""
    _mark: tuple[int, float, float] | None = field(default=None, repr=False)
    """The thread read, and its (wall, CPU) seconds at the start of the window being measured."""

    GROWTH = 2.0
    WEIGHT = 0.2
    """How much one report moves the lateness average: the interval follows a few loop turns, not one."""
    BUSY_FROM = 0.5
    BUSY_FULL = 0.75
    WINDOW_S = 0.05
    LOAD_SPAN_S = 0.25
    """A window this long or longer replaces the load average; a shorter one moves it in proportion."""

    def late(self, seconds: float) -> None:
        self.lag_s += (max(0.0, seconds) - self.lag_s) * self.WEIGHT
        self.load(time.perf_counter())

    def load(self, wall_s: float, cpu_s: float | None = None, thread: int | None = None) -> None:
        """A reading of the wall clock and of the CPU clock of `thread` (the caller's): the loop's. A reading
        from another thread (another loop's relay) starts a new window rather than mixing two threads' clocks.
        Without `cpu_s`, the thread's CPU clock is read, only when a window starts or ends: it is a system call."""
        thread = threading.get_ident() if thread is None else thread
        if self._mark is None or self._mark[0] != thread:
            self._mark = (thread, wall_s, time.thread_time() if cpu_s is None else cpu_s)
            return
        window = wall_s - self._mark[1]
        if window < self.WINDOW_S:
            return
        cpu_s = time.thread_time() if cpu_s is None else cpu_s
        share = min(1.0, max(0.0, (cpu_s - self._mark[2]) / window))
        self.busy += (share - self.busy) * min(1.0, window / self.LOAD_SPAN_S)
        self._mark = (thread, wall_s, cpu_s)

    @property
    def interval_s(self) -> float:
        loaded = (self.busy - self.BUSY_FROM) / (self.BUSY_FULL - self.BUSY_FROM) * self.most_s
        return min(self.most_s, max(self.base_s, self.GROWTH * self.lag_s, loaded))


class Relay:
    """One stream's text sent as progress until the stream is done; a heartbeat when nothing was sent for
    `heartbeat_s`.

    Text goes out at once unless the previous notification left less than the
    pacer's interval ago; then it waits out the rest of the interval, gathering
    what else arrives into the same notification, or until the stream ends. Chunks
    spaced wider than the interval are never delayed; a fast stream costs at most
    one notification an interval instead of one per chunk.

    Text that may go out at once is sent by the reader itself (`nudge`, awaited
    after each event it adds), a turn of the loop sooner than a task woken for it.
    The relay's task (`run`) sends the rest: text held for the interval or arriving
    while the task is awake, heartbeats, and the end.
    How late its wake-ups are tells the pacer how far behind the loop is.
    """

    def __init__(self, state: StreamState, progress: ProgressSender, heartbeat_s: float, pacer: Pacer) -> None:
        self.state = state
        self.progress = progress
        self.heartbeat_s = heartbeat_s
        self.pacer = pacer
        self._last_text = -math.inf
        self._awake = False
        """The relay's task is woken, holding text or sending: what arrives meanwhile is its to send, after what it
        has, and no sooner than the interval allows."""
        self._failed: Exception | None = None
        """A send from the reader's task that failed: the relay's task raises it, as if it had sent it."""

    async def nudge(self) -> None:
        """The reader added an event: send what is pending now if the interval allows, else wake the relay."""
        state = self.state
        if not state.pending:
            return
        if (
            self._awake or state.changed.is_set() or self._failed is not None
            or now() < self._last_text + self.pacer.interval_s
        ):  # fmt: skip
            state.changed.set()
            return
        self.pacer.late(0.0)  # nothing waited for a turn of the loop; the reading of the loop's load still counts
        try:
            await self._send_pending()
        except Exception as exc:  # noqa: BLE001 - raised by the relay's task, which ends the call
            self._failed = exc
            state.changed.set()

    async def run(self) -> None:
        state = self.state
        while True:
            self._awake = False
            wait = self.progress.last_sent + self.heartbeat_s - now()
            if self._failed is None:
                with anyio.move_on_after(max(0.0, wait)):
                    await state.changed.wait()
            self._awake = True
            if self._failed is not None:
                raise self._failed
            woke = now()
            if state.pending:
                self.pacer.late(woke - state.since)
            hold = self._last_text + self.pacer.interval_s - woke
            if hold > 0 and state.pending and not state.done:
                with anyio.move_on_after(hold) as holding:
                    await state.ended.wait()  # the end of the stream goes out at once
                if holding.cancelled_caught:
                    self.pacer.late(now() - woke - hold)
            state.changed = anyio.Event()  # swapped before reading, so a change after this wakes the next wait
            if not await self._send_pending() and now() >= self.progress.last_sent + self.heartbeat_s:
                await self.progress.send(None)
            if state.done and not state.pending:
                return

    async def _send_pending(self) -> bool:
        """Send what is pending; whether there was anything."""
        messages = self.state.take_pending()
        for message in messages:
            await self.progress.send(message)
            self._last_text = self.progress.last_sent
        return bool(messages)


class Heartbeats:
    """One server's heartbeats, sent by one task (`run`, for as long as the server serves): each waiting call's
    `ProgressSender` gets one whenever it went its interval without a notification, the task sleeping until the
    next is due. A waiting call is an entry here, not a task of its own (a task per call cost more than the rest
    of its bookkeeping). While no task runs (another loop, or before the server serves), a call beats alone."""

    def __init__(self) -> None:
        self._waiting: dict[ProgressSender, tuple[float, int]] = {}
        """Each waiting call's sender -> its interval, and how many of its branches wait (a fan-out's share one)."""
        self._next_at = math.inf
        self._changed: anyio.Event | None = None
        self._lead: anyio.Lock | None = None
        self._loop: anyio.lowlevel.EventLoopToken | None = None
        """The event loop of the task that runs now (None: none does)."""

    def ticking(self) -> bool:
        return self._loop is not None and self._loop == anyio.lowlevel.current_token()

    def add(self, progress: ProgressSender, interval_s: float) -> None:
        self._waiting[progress] = (interval_s, self._waiting.get(progress, (0.0, 0))[1] + 1)
        if progress.last_sent + interval_s < self._next_at and self._changed is not None:
            self._changed.set()  # due before the task wakes: it looks again

    def discard(self, progress: ProgressSender) -> None:
        interval_s, waiting = self._waiting.pop(progress, (0.0, 1))
        if waiting > 1:
            self._waiting[progress] = (interval_s, waiting - 1)

    async def run(self) -> None:
        """Send the heartbeats until cancelled; a second run waits, and takes over when the first ends."""
        if self._lead is None:
            self._lead = anyio.Lock()
        async with self._lead, anyio.create_task_group() as tg:
            self._loop = anyio.lowlevel.current_token()
            try:
                while True:
                    self._changed = anyio.Event()  # before reading: an entry added from now on wakes the next wait
                    at_now = now()
                    self._next_at = math.inf
                    for progress, (interval_s, _) in list(self._waiting.items()):
                        at = progress.last_sent + interval_s
                        if at <= at_now:
                            progress.last_sent = at = at_now  # not due again while this one is on its way
                            tg.start_soon(_beat, progress)
                            at += interval_s
                        self._next_at = min(self._next_at, at)
                    with anyio.move_on_after(self._next_at - at_now):
                        await self._changed.wait()
            finally:
                self._loop = None


async def _beat(progress: ProgressSender) -> None:
    """One heartbeat; a client gone meanwhile is its own call's concern, not the other calls'."""
    try:
        await progress.send(None)
    except Exception as exc:  # noqa: BLE001 - the call itself meets its closed session
        logger.debug("a heartbeat was not sent: %s: %s", type(exc).__name__, exc)


class ProgressObserver(Observer):
    """A call's progress as MCP progress notifications: heartbeats while it waits, its stream's text as it
    arrives (the relay sends the heartbeats from then on)."""

    def __init__(self, progress: ProgressSender, heartbeat_s: float, pacer: Pacer, beats: Heartbeats) -> None:
        self.progress = progress
        self.heartbeat_s = heartbeat_s
        self.pacer = pacer
        self.beats = beats
        self._beating: anyio.CancelScope | None = None
        self._entered = False
        """Whether this observer's call is one of `beats`' waiting calls now."""

    def branch(self) -> ProgressObserver:
        # The same numbering: the notifications of every branch increase together.
        return ProgressObserver(self.progress, self.heartbeat_s, self.pacer, self.beats)

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        if not self.beats.ticking():
            async with heartbeats(self.progress, self.heartbeat_s) as beating:
                self._beating = beating
                yield
            return
        self.beats.add(self.progress, self.heartbeat_s)
        self._entered = True
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        if self._entered:
            self._entered = False
            self.beats.discard(self.progress)

    @asynccontextmanager
    async def relaying(self, state: StreamState) -> AsyncIterator[Nudge]:
        self._leave()
        if self._beating is not None:
            self._beating.cancel()
        relay = Relay(state, self.progress, self.heartbeat_s, self.pacer)
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.run)
            yield relay.nudge
