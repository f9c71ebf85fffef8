"""The relay's pacing: one notification an interval, the interval growing while the event loop is behind or busy."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import anyio
import anyio.lowlevel
import pytest

from hive_mcp.calls.stream import StreamState
from hive_mcp.mcp.relay import Heartbeats, Pacer, ProgressObserver, ProgressSender, Relay
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


def test_a_loop_mostly_on_the_cpu_widens_the_interval_to_its_most_and_an_idle_one_brings_it_back() -> None:
    """The loop's thread's share of CPU over wall time (readings of both clocks): from `BUSY_FROM` the interval grows,
    reaching `most_s` at `BUSY_FULL`; below `BUSY_FROM` it is the base, however many readings came before."""
    pacer = Pacer(base_s=0.01, most_s=0.2)
    wall = cpu = 0.0
    pacer.load(wall, cpu)
    for _ in range(20):  # a second at 40% busy
        wall, cpu = wall + 0.05, cpu + 0.02
        pacer.load(wall, cpu)
    assert pacer.interval_s == 0.01
    for _ in range(20):  # a second fully busy
        wall, cpu = wall + 0.05, cpu + 0.05
        pacer.load(wall, cpu)
    assert pacer.interval_s == 0.2
    midway = (Pacer.BUSY_FROM + Pacer.BUSY_FULL) / 2
    for _ in range(40):
        wall, cpu = wall + 0.05, cpu + 0.05 * midway
        pacer.load(wall, cpu)
    assert 0.05 < pacer.interval_s < 0.15
    for _ in range(40):  # idle again
        wall += 0.05
        pacer.load(wall, cpu)
    assert pacer.interval_s == 0.01


def test_readings_closer_together_than_a_window_or_from_two_threads_are_not_a_measure() -> None:
    pacer = Pacer(base_s=0.01, most_s=0.2)
    pacer.load(0.0, 0.0, thread=1)
    pacer.load(0.001, 0.001, thread=1)  # a millisecond fully busy says nothing of the loop's load
    assert pacer.interval_s == 0.01
    pacer.load(1.0, 0.0, thread=2)  # another thread's CPU clock: no share of one clock over the other's window
    pacer.load(1.0 + Pacer.WINDOW_S, 0.0, thread=1)
    assert pacer.busy == 0.0
    pacer.load(2.0, 1.0, thread=1)  # a whole window on thread 1, fully busy
    assert pacer.busy > 0.9


async def _relay_beside(
    turn: Callable[[], object], chunks: list[str], pacer: Pacer, spacing_s: float, burst: int = 1
) -> list[str | None]:
    """The messages a `Relay` sends for `chunks` (added `burst` at a time, `spacing_s` apart; 0: one a loop turn,
    each nudging the relay as a stream's reader does) while another task does `turn` between its own loop turns,
    as a server's other streams do under load."""
    sent: list[str | None] = []

    async def report(progress: float, message: str | None) -> None:
        sent.append(message)

    state = StreamState()
    relay = Relay(state, ProgressSender(report), 60.0, pacer)
    done = anyio.Event()

    async def hog() -> None:
        while not done.is_set():
            turn()
            await anyio.lowlevel.checkpoint()

    async def feed() -> None:
        for at in range(0, len(chunks), burst):
            for text in chunks[at : at + burst]:
                state.add(TextDeltaEvent(text))
                await relay.nudge()
            await anyio.sleep(spacing_s)
        state.end()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hog)
        tg.start_soon(feed)
        await relay.run()
        done.set()
    return sent


def _on_the_cpu_for_a_millisecond() -> None:
    until = time.thread_time() + 0.001
    while time.thread_time() < until:
        pass


async def test_a_loop_busy_on_the_cpu_widens_the_interval_beyond_its_lateness() -> None:
    """The other task keeps the loop's thread on the CPU in short turns, so wake-ups need not be late, yet the
    relay sends fewer notifications, each with more text, and the text stays whole."""
    chunks = [f"w{i} " for i in range(200)]
    pacer = Pacer(base_s=0.01, most_s=0.2)
    sent = await _relay_beside(_on_the_cpu_for_a_millisecond, chunks, pacer, 0.002)
    assert "".join(m for m in sent if m) == "".join(chunks)
    # the load widened it past the base and past what lateness alone gives (a loaded machine makes wake-ups late)
    assert pacer.busy > Pacer.BUSY_FROM, pacer
    assert pacer.interval_s > max(5 * pacer.base_s, Pacer.GROWTH * pacer.lag_s), pacer
    assert len(sent) < len(chunks) / 4


async def test_a_loop_held_20_ms_a_turn_widens_the_interval_and_the_text_stays_whole() -> None:
    """The other task holds the loop 20 ms a turn without using the CPU while text arrives faster than one
    notification a turn: every wake-up of the relay is late."""
    chunks = [f"w{i} " for i in range(60)]
    pacer = Pacer(base_s=0.001, most_s=0.5)
    sent = await _relay_beside(partial(time.sleep, 0.02), chunks, pacer, 0, burst=3)
    assert "".join(m for m in sent if m) == "".join(chunks)
    assert pacer.busy < Pacer.BUSY_FROM, pacer  # lateness alone widened it
    assert pacer.interval_s > 10 * pacer.base_s, pacer


async def test_text_held_for_the_interval_goes_out_as_soon_as_the_stream_ends() -> None:
    """A stream that ends while the relay gathers text is answered then, not at the interval's end: under load
    the interval is long, and every call would wait out the rest of it before its result."""
    sent: list[str | None] = []
    first = anyio.Event()

    async def report(progress: float, message: str | None) -> None:
        sent.append(message)
        first.set()

    state = StreamState()
    relay = Relay(state, ProgressSender(report), 3600.0, Pacer(base_s=3600.0, most_s=3600.0))

    async def feed() -> None:
        state.add(TextDeltaEvent("one "))
        await relay.nudge()
        await first.wait()  # the first text went out at once; what follows waits out the interval
        state.add(TextDeltaEvent("two"))
        await relay.nudge()
        await anyio.wait_all_tasks_blocked()  # the relay is holding "two"
        state.end()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            await relay.run()
    assert sent == ["one ", "two"]


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


async def test_a_notification_leaves_without_waiting_a_turn_of_the_loop_when_nothing_else_is_sending() -> None:
    """The sender's lock, free, is taken without yielding: a task already waiting for its turn runs after."""
    order: list[str] = []

    async def report(progress: float, message: str | None) -> None:
        order.append(f"sent {message}")

    async def other() -> None:
        order.append("another task's turn")

    sender = ProgressSender(report)
    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await sender.send("text")
    assert order == ["sent text", "another task's turn"]


async def test_text_the_interval_allows_leaves_from_the_readers_task_without_a_turn_of_the_loop() -> None:
    """Nudged after the reader adds text, the observer sends it there and then (the relay's task, woken for it,
    would send it a turn of the loop later); text inside the interval is left to the relay, which sends it at
    the end."""
    sent: list[str | None] = []

    async def report(progress: float, message: str | None) -> None:
        sent.append(message)

    observer = ProgressObserver(ProgressSender(report), 3600.0, Pacer(base_s=3600.0, most_s=3600.0), Heartbeats())
    state = StreamState()
    with anyio.fail_after(10):
        async with observer.relaying(state) as nudge:
            state.add(TextDeltaEvent("one "))
            await nudge()
            assert sent == ["one "]
            state.add(TextDeltaEvent("two"))
            await nudge()
            await anyio.wait_all_tasks_blocked()
            assert sent == ["one "]  # held for the interval
            state.end()
    assert sent == ["one ", "two"]


async def test_a_send_that_fails_in_the_readers_task_ends_the_relay_with_its_error_not_the_reader() -> None:
    """The client gone while the reader sends: the nudge returns (the reader would take the error for the
    provider's), and the relay's task raises it, which ends the call as a failed send always has."""

    async def report(progress: float, message: str | None) -> None:
        raise anyio.BrokenResourceError

    observer = ProgressObserver(ProgressSender(report), 3600.0, Pacer(), Heartbeats())
    state = StreamState()
    nudged = False
    with anyio.fail_after(10), pytest.raises(BaseExceptionGroup) as caught:
        async with observer.relaying(state) as nudge:
            state.add(TextDeltaEvent("one"))
            await nudge()
            nudged = True
            await anyio.sleep_forever()  # cancelled by the relay's failure
    assert nudged
    assert caught.group_contains(anyio.BrokenResourceError)


async def test_text_that_arrives_while_the_relay_holds_text_waits_with_it_for_the_interval() -> None:
    """The relay holds "b" for the interval; the loop is blocked past the interval's end before the relay resumes,
    and "c" and "d" arrive then. They go out with "b" in one notification when the relay resumes: sent from the
    reader at once, "b c" would leave and the relay would send "d" right after it, two notifications with no
    interval between them."""
    interval = 0.05
    sent: list[tuple[float, str | None]] = []
    first = anyio.Event()

    async def report(progress: float, message: str | None) -> None:
        sent.append((anyio.current_time(), message))
        first.set()

    state = StreamState()
    relay = Relay(state, ProgressSender(report), 3600.0, Pacer(base_s=interval, most_s=interval))

    async def feed() -> None:
        for text in ("a ", "b "):
            state.add(TextDeltaEvent(text))
            await relay.nudge()
        await anyio.wait_all_tasks_blocked()  # the relay holds "b"
        time.sleep(interval * 1.2)  # the loop blocked past the interval's end
        for text in ("c ", "d "):
            state.add(TextDeltaEvent(text))
            await relay.nudge()
        state.end()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            await relay.run()
    assert [m for _, m in sent] == ["a ", "b c d "]
    assert sent[1][0] - sent[0][0] >= interval
