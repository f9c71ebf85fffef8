"""The relay's pacing: one notification an interval, the interval growing while the event loop is behind."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel

from hive_mcp.calls.stream import StreamState
from hive_mcp.mcp.relay import Heartbeats, Pacer, ProgressObserver, ProgressSender, relay_progress
from hive_mcp.provider import TextDeltaEvent


def test_the_interval_is_the_base_while_the_loop_keeps_up() -> None:
    pacer = Pacer(base_s=0.01, most_s=0.2)
    for _ in range(50):
        pacer.late(0.0001)
    assert pacer.interval_s == 0.01


def test_the_interval_follows_lateness_up_to_its_most_and_comes_back() -> None:
    pacer = Pacer(base_s=0.01, most_s=0.2)
    for _ in range(50):
        pacer.late(0.03)
    assert 0.05 < pacer.interval_s <= 0.2
    for _ in range(50):
        pacer.late(1.0)
    assert pacer.interval_s == 0.2
    for _ in range(100):
        pacer.late(0.0)
    assert pacer.interval_s == 0.01


async def test_a_busy_loop_widens_the_interval_and_the_text_stays_whole() -> None:
    """A task that holds the loop 20 ms a turn (as a server's other streams do under load)."""
    chunks = [f"w{i} " for i in range(60)]
    sent: list[str | None] = []

    async def report(progress: float, message: str | None) -> None:
        sent.append(message)

    pacer = Pacer(base_s=0.001, most_s=0.5)
    state = StreamState()
    done = anyio.Event()

    async def hog() -> None:
        while not done.is_set():
            time.sleep(0.02)  # CPU-bound work elsewhere on the loop: it does not yield
            await anyio.lowlevel.checkpoint()

    async def feed() -> None:
        for text in chunks:
            state.add(TextDeltaEvent(text))
            await anyio.lowlevel.checkpoint()
        state.done = True
        state.changed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hog)
        tg.start_soon(feed)
        await relay_progress(state, ProgressSender(report), 60.0, pacer)
        done.set()
    assert "".join(m for m in sent if m) == "".join(chunks)
    assert pacer.interval_s > 10 * pacer.base_s, pacer


async def _beats_while_waiting(beats: Heartbeats, calls: int) -> list[list[float]]:
    """`calls` calls waiting at once on `beats` (0.02 s heartbeats), each until it has heard three."""
    heard: list[list[float]] = [[] for _ in range(calls)]

    async def call(i: int) -> None:
        done = anyio.Event()

        async def report(progress: float, message: str | None) -> None:
            assert message is None  # a heartbeat carries no text
            heard[i].append(progress)
            if len(heard[i]) == 3:
                done.set()

        observer = ProgressObserver(ProgressSender(report), 0.02, Pacer(), beats)
        async with observer.waiting():
            with anyio.fail_after(10):
                await done.wait()

    async with anyio.create_task_group() as tg:
        for i in range(calls):
            tg.start_soon(call, i)
    return heard


async def test_one_task_beats_for_every_waiting_call_while_the_server_serves() -> None:
    beats = Heartbeats()
    async with anyio.create_task_group() as tg:
        tg.start_soon(beats.run)
        await anyio.wait_all_tasks_blocked()
        assert beats.ticking()
        heard = await _beats_while_waiting(beats, 3)
        tg.cancel_scope.cancel()
    assert heard == [[1, 2, 3]] * 3  # numbered per call, each call its own
    assert not beats.ticking()


async def test_a_call_waiting_while_nothing_beats_for_it_beats_alone() -> None:
    beats = Heartbeats()  # its task not running: another loop's, or the server not serving yet
    assert not beats.ticking()
    assert await _beats_while_waiting(beats, 2) == [[1, 2, 3]] * 2


async def test_branches_sharing_a_sender_beat_until_the_last_stops_waiting() -> None:
    """A fan-out's members number their notifications together: one member done waiting leaves the others'."""
    beats = Heartbeats()
    heard: list[float] = []
    more = anyio.Event()

    async def report(progress: float, message: str | None) -> None:
        heard.append(progress)
        if len(heard) == 5:
            more.set()

    observer = ProgressObserver(ProgressSender(report), 0.02, Pacer(), beats)
    first, second = observer.branch(), observer.branch()
    async with anyio.create_task_group() as tg:
        tg.start_soon(beats.run)
        await anyio.wait_all_tasks_blocked()
        async with second.waiting():
            async with first.waiting():
                pass  # the first member got its slot at once
            with anyio.fail_after(10):
                await more.wait()  # the second, still waiting, still beats
        tg.cancel_scope.cancel()
    assert heard == [1, 2, 3, 4, 5]
