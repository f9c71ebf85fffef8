"""One conversation, many writers, on both backends (SQLite on a real file, Redis on a real valkey-server).

Appends racing on one tip lose no turn and never interleave, whether the writers are tasks, stores or a
second process: the backend's compare-and-swap lets one win and tells the others to retry. Calls on one
conversation queue in the process, one after the other, and a waiter gives up or is cancelled without
taking a turn; across stores one writer holds a conversation by a lease, which a dead holder loses.
"""

from __future__ import annotations

import anyio
import pytest

from hive_mcp.conversations import ConversationBusy, ConversationConflict, ConversationLocks, ConversationStore, new_id
from tests.conftest_valkey import Backend, answer, started, turn, user, wait_for

# ---------------------------------------------------------------------------
# Appends racing on one tip
# ---------------------------------------------------------------------------


async def test_racing_writers_lose_no_turn(backend: Backend) -> None:
    """Eight writers (each its own store, as separate processes would be) append to one thread at once."""
    writers = [backend.make() for _ in range(8)]
    thread = await started(writers[0])
    conflicts = 0

    async def write(i: int, store: ConversationStore) -> None:
        nonlocal conflicts
        while True:
            tip = (await store.thread(thread.id)).tip
            try:
                await store.append(thread.id, [user(f"q{i}"), answer(f"a{i}")], turn(), expected_tip=tip)
                return
            except ConversationConflict as exc:
                assert exc.retryable and "retry" in str(exc)
                conflicts += 1

    async with anyio.create_task_group() as tg:
        for i, store in enumerate(writers):
            tg.start_soon(write, i, store)
    view = await writers[0].get(thread.id)
    texts = [m["content"] for m in view.chat_messages()[3:]]
    assert sorted(texts[0::2]) == [f"q{i}" for i in range(8)]
    assert all(texts[k + 1] == texts[k].replace("q", "a") for k in range(0, 16, 2))  # never interleaved
    assert view.thread.turns == 9


async def test_two_writers_on_one_tip_one_wins_the_other_is_told(backend: Backend) -> None:
    """Both pass the thread they read (`base`), so only the backend's compare-and-swap can tell them apart."""
    a, b = backend.make(), backend.make()
    thread = await started(a)
    outcomes: list[str] = []

    async def write(store: ConversationStore, name: str) -> None:
        try:
            await store.append(thread.id, [user(name)], turn(), expected_tip=thread.tip, base=thread)
            outcomes.append("ok")
        except ConversationConflict:
            outcomes.append("conflict")

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, a, "a")
        tg.start_soon(write, b, "b")
    assert sorted(outcomes) == ["conflict", "ok"]
    assert (await b.thread(thread.id)).turns == 2


async def test_writers_in_two_processes_lose_no_turn(backend: Backend) -> None:
    import subprocess
    import sys

    from harness.processes import ROOT, child_env

    store = backend.make()
    thread = await started(store)
    where = str(backend.path) if backend.kind == "sqlite" else backend.server.url  # type: ignore[union-attr]
    n = 25
    async with await anyio.open_process(
        [sys.executable, "-m", "tests.conversation_writer", backend.kind, where, backend.prefix, thread.id, str(n)],
        cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    ) as child:  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        assert (await child.stdout.receive()).startswith(b"ready")
        await child.stdin.send(b"go\n")  # both start writing now
        for i in range(n):
            while True:
                tip = (await store.thread(thread.id)).tip
                try:
                    await store.append(thread.id, [user(f"parent {i}")], turn(), expected_tip=tip)
                    break
                except ConversationConflict:
                    pass
        assert await child.wait() == 0
    texts = [m["content"] for m in (await store.get(thread.id)).chat_messages()[3:]]
    assert sorted(texts) == sorted([f"parent {i}" for i in range(n)] + [f"child {i}" for i in range(n)])
    assert [t for t in texts if t.startswith("child")] == [f"child {i}" for i in range(n)]


# ---------------------------------------------------------------------------
# One call, one writer at a time
# ---------------------------------------------------------------------------


async def test_calls_on_one_conversation_are_served_one_after_the_other(backend: Backend) -> None:
    store = backend.make()
    thread = await started(store)
    locks = ConversationLocks(timeout_s=10)
    first_in, release_first = anyio.Event(), anyio.Event()
    order: list[str] = []

    async def call(name: str, hold: anyio.Event | None) -> None:
        async with locks.hold(thread.id):
            order.append(f"{name} in")
            if hold is not None:
                first_in.set()
                await hold.wait()
            current = await store.thread(thread.id)
            await store.append(thread.id, [user(name), answer(name)], turn(), expected_tip=current.tip)
            order.append(f"{name} out")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first", release_first)
        await first_in.wait()
        tg.start_soon(call, "second", None)
        await wait_for(lambda: locks.waiting(thread.id) == 1)
        assert order == ["first in"]
        release_first.set()
    assert order == ["first in", "first out", "second in", "second out"]
    assert (await store.thread(thread.id)).turns == 3 and len(locks) == 0


async def test_a_waiter_times_out_or_is_cancelled_without_taking_a_turn() -> None:
    locks = ConversationLocks(timeout_s=0.05)
    cid = new_id()
    async with locks.hold(cid):
        with pytest.raises(ConversationBusy, match="busy with another call"):
            async with locks.hold(cid):
                pytest.fail("entered while held")
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with locks.hold(cid, timeout_s=10):
                pytest.fail("entered while held")
        assert locks.waiting(cid) == 0
    async with locks.hold(cid, timeout_s=0.05):  # free again: nobody stale in the queue
        pass
    assert len(locks) == 0


async def test_one_writer_per_conversation_across_processes(backend: Backend) -> None:
    """Two stores on one storage (two processes, or two instances): the second waits for the first's turn,
    gets a one-line busy error when the queue timeout passes first, and takes the turn once the first holder's
    lease ends (a holder that died never gives it back)."""
    first, second = backend.make(), backend.make()
    held = first.writer("conv_x", lease_s=60, timeout_s=1)
    await held.__aenter__()
    with pytest.raises(ConversationBusy, match="conv_x is busy"):
        async with second.writer("conv_x", lease_s=60, timeout_s=0.1):
            pass
    await held.__aexit__(None, None, None)
    async with second.writer("conv_x", lease_s=60, timeout_s=0):
        pass  # given back: taken at once, even with no time to wait
    # A turn taken by a process that then died: nothing renews its lease, nothing gives it back.
    assert await first._take_writer("conv_y", "dead", 0.3)
    with anyio.fail_after(5):
        async with second.writer("conv_y", lease_s=60, timeout_s=None):
            pass


async def test_a_store_closed_while_a_call_holds_a_turn_gives_it_back_at_once(backend: Backend) -> None:
    """Serving closes its store as it stops: a turn still held then is given back as the store closes, so
    another process continues that conversation at once, not once the lease (here a minute) has run out; the
    call's own end, after the close, gives back nothing more (not the turn the other process took since)."""
    first, second = backend.make(), backend.make()
    call = first.writer("conv_x", lease_s=60, timeout_s=1)
    await call.__aenter__()
    await first.aclose()
    async with second.writer("conv_x", lease_s=60, timeout_s=0):
        await call.__aexit__(None, None, None)
        with pytest.raises(ConversationBusy):
            async with backend.make().writer("conv_x", lease_s=60, timeout_s=0):
                pass
