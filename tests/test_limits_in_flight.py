"""Cost control on how many calls run at once (hive_mcp/limits.py, used by the server): a call past
max_in_flight waits for a slot, hears heartbeats while it waits and is refused as busy after the queue
timeout; a cancelled waiter takes no slot and gives none away; and each caller's share of the slots, so one
caller's calls queue behind their own and not in front of others'.

Through the server where a call is the subject (the real LiteLLMProvider against the scripted upstream,
nothing mocked), on `Limits` alone where the queue is. Races are settled by events and by polling counts
under a bounded deadline, never by sleeping for a guessed time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Busy, Limits
from tests.clients import WAIT, connect, Progress, text_of, until
from tests.limit_calls import TOOLS, assert_refused, held_stream, ok_reply
from harness.upstream import Reply, Upstream


# ---------------------------------------------------------------------------
# Calls in flight
# ---------------------------------------------------------------------------


async def _hold_two_streams(c: Any, tg: Any) -> None:
    """Start two stream_complete calls and return once both are streaming at the upstream."""
    for _ in range(2):
        progress = Progress()
        tg.start_soon(lambda p=progress: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=p))
        await progress.wait_for(lambda items: any(m for _, m in items))


async def test_call_beyond_the_limit_waits_then_runs(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    limits = Limits(max_in_flight=2, queue_timeout_s=60)
    upstream.script(held_stream(), held_stream(), Reply.text("third"))
    results: list[types.CallToolResult] = []
    async with connect(make_server(limits), mode) as c, anyio.create_task_group() as tg:
        await _hold_two_streams(c, tg)
        assert limits.in_flight == 2

        async def third() -> None:
            results.append(await c.call_tool("complete", {"prompt": "third"}))

        tg.start_soon(third)
        await until(lambda: limits.waiting == 1, "the third call to queue")
        assert len(upstream.chat_requests()) == 2  # the third waits in the server, not at the upstream
        assert results == []
        upstream.release()
        await until(lambda: len(results) == 1, "the third call to finish")
    [r] = results
    assert not r.is_error and text_of(r) == "third"
    assert len(upstream.chat_requests()) == 3
    assert (limits.in_flight, limits.waiting) == (0, 0)


@pytest.mark.parametrize("tool", TOOLS)
async def test_call_that_waits_too_long_is_busy(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str, tool: str
) -> None:
    limits = Limits(max_in_flight=2, queue_timeout_s=0.2)
    upstream.script(held_stream(), held_stream())
    async with connect(make_server(limits), mode) as c:
        async with anyio.create_task_group() as tg:
            await _hold_two_streams(c, tg)
            with anyio.fail_after(WAIT):
                busy = await c.call_tool(tool, {"prompt": "third"})
            assert_refused(busy, "busy", "2 calls", "0.2s")
            assert len(upstream.chat_requests()) == 2
            assert (limits.in_flight, limits.waiting) == (2, 0)
            upstream.release()
        await until(lambda: limits.in_flight == 0, "the held calls to end")
        upstream.script(ok_reply(tool, "after"))
        after = await c.call_tool(tool, {"prompt": "again"})
    assert not after.is_error and text_of(after) == "after"
    assert store.count() == 0  # a busy refusal writes no dump


@pytest.mark.parametrize("tool", TOOLS)
async def test_queued_call_sends_heartbeats_then_runs(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str, tool: str
) -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    upstream.script(held_stream(), ok_reply(tool, "queued reply"))
    results: list[types.CallToolResult] = []
    queued = Progress()
    async with connect(make_server(limits, heartbeat_s=0.02), mode) as c, anyio.create_task_group() as tg:
        holder = Progress()
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=holder))
        await holder.wait_for(lambda items: any(m for _, m in items))

        async def queued_call() -> None:
            results.append(await c.call_tool(tool, {"prompt": "wait"}, progress_callback=queued))

        tg.start_soon(queued_call)
        await until(lambda: limits.waiting == 1, "the call to queue")
        await queued.wait_for(lambda items: queued.heartbeats >= 2)
        assert limits.waiting == 1 and len(upstream.chat_requests()) == 1  # still queued, upstream untouched
        upstream.release()
        await until(lambda: len(results) == 1, "the queued call to finish")
    [r] = results
    assert not r.is_error and text_of(r) == "queued reply"
    assert queued.increasing(), queued.items  # one count over the queue, the wait and the stream
    assert queued.text == ("queued reply" if tool == "stream_complete" else "")


async def test_cancelled_waiter_releases_nothing(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    upstream.script(held_stream(), Reply.text("next"))
    async with connect(make_server(limits), mode) as c, anyio.create_task_group() as tg:
        progress = Progress()
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hold"}, progress_callback=progress))
        await progress.wait_for(lambda items: any(m for _, m in items))

        scope = anyio.CancelScope()

        async def waiter() -> None:
            with scope:
                await c.call_tool("complete", {"prompt": "impatient"})

        tg.start_soon(waiter)
        await until(lambda: limits.waiting == 1, "the second call to queue")
        scope.cancel()
        await until(lambda: limits.waiting == 0, "the cancelled call to leave the queue")
        assert limits.in_flight == 1  # the stream still holds the only slot

        # So the next call must wait too, not slip through a slot the cancelled one gave back.
        results: list[types.CallToolResult] = []

        async def next_call() -> None:
            results.append(await c.call_tool("complete", {"prompt": "next"}))

        tg.start_soon(next_call)
        await until(lambda: limits.waiting == 1, "the next call to queue")
        assert len(upstream.chat_requests()) == 1
        upstream.release()
        await until(lambda: len(results) == 1, "the next call to finish")
    assert text_of(results[0]) == "next"
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=60)
    holder = limits.slot()
    await holder.__aenter__()
    b_scope = anyio.CancelScope()
    c_ran = anyio.Event()

    async def b() -> None:
        with b_scope:
            async with limits.slot():
                pytest.fail("b was cancelled: it must not run")

    async def c() -> None:
        async with limits.slot():
            c_ran.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(b)
        await until(lambda: limits.waiting == 1, "b to queue")
        tg.start_soon(c)
        await until(lambda: limits.waiting == 2, "c to queue")
        # Hand the slot to b and cancel b before it runs again: b must pass it on to c.
        await holder.__aexit__(None, None, None)
        b_scope.cancel()
        with anyio.fail_after(WAIT):
            await c_ran.wait()
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_zero_queue_timeout_still_takes_a_free_slot() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=0)
    async with limits.slot():
        assert limits.in_flight == 1
        with pytest.raises(Busy):
            async with limits.slot():
                pytest.fail("no slot was free")
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_queue_timeout_takes_nothing() -> None:
    limits = Limits(max_in_flight=1, queue_timeout_s=0.05)
    async with limits.slot():
        with pytest.raises(Busy) as info:
            async with limits.slot():
                pytest.fail("no slot was free")
        assert (limits.in_flight, limits.waiting) == (1, 0)
        assert "\n" not in str(info.value) and "busy" in str(info.value)
    assert limits.in_flight == 0
    async with limits.slot():  # and the slot is there for the next one
        assert limits.in_flight == 1


# ---------------------------------------------------------------------------
# Each caller's share
# ---------------------------------------------------------------------------


async def test_a_caller_past_their_share_waits_behind_their_own_calls_not_in_front_of_others() -> None:
    limits = Limits(max_in_flight=3, caller_in_flight=2, queue_timeout_s=60)
    hold, order = anyio.Event(), []

    async def call(who: str, tag: str) -> None:
        async with limits.slot(who):
            order.append(tag)
            await hold.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "alice", "a1")
        tg.start_soon(call, "alice", "a2")
        tg.start_soon(call, "alice", "a3")  # past her share: waits for one of hers
        await until(lambda: (limits.in_flight, limits.waiting) == (2, 1), "alice's third call to wait")
        tg.start_soon(call, "bob", "b1")  # the third slot is Bob's, at once
        await until(lambda: "b1" in order, "bob's call to be admitted")
        assert order == ["a1", "a2", "b1"] and (limits.in_flight, limits.waiting) == (3, 1)
        hold.set()
    assert order[-1] == "a3" and (limits.in_flight, limits.waiting) == (0, 0)
    assert limits._shares == {}  # a caller's share goes once nothing of theirs holds or waits


async def test_a_caller_waiting_for_their_share_too_long_is_busy() -> None:
    limits = Limits(max_in_flight=4, caller_in_flight=1, queue_timeout_s=0.05)
    async with limits.slot("alice"):
        with pytest.raises(Busy) as info:
            async with limits.slot("alice"):
                pytest.fail("her one share was taken")
        assert "of this caller's" in str(info.value) and "\n" not in str(info.value)
        async with limits.slot("bob"):
            assert limits.in_flight == 2


def test_callers_get_half_the_slots_over_http_and_all_of_them_over_stdio(tmp_path: Path) -> None:
    from hive_mcp.settings import Settings

    assert Limits.from_settings(Settings(transport="http", max_in_flight=64)).caller_in_flight == 32
    assert Limits.from_settings(Settings(transport="http", max_in_flight=1)).caller_in_flight == 1
    assert Limits.from_settings(Settings(transport="sse", caller_in_flight=5)).caller_in_flight == 5
    assert Limits.from_settings(Settings(transport="stdio")).caller_in_flight is None
