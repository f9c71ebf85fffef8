"""Tasks shared between instances: on a real valkey-server (and a SQLite file), a task running on instance A is
read and cancelled through instance B, and a task whose instance was killed reads `failed`, never `working`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import pytest
import redis
from mcp_types import CallToolResult, TextContent

from harness.processes import child_env
from hive_mcp.tasks import TaskEngine, TaskRecord
from hive_mcp.tasks.redis_store import RedisTaskStore
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from hive_mcp.tasks.engine import INSTANCE_GONE, TooManyTasks, UnknownCursor
from hive_mcp.tasks.records import MIN_TTL_MS
from tests.held_tasks import HeldEnd

pytestmark = pytest.mark.anyio
WAIT = 10.0


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "tasks.sqlite3")
    server = request.getfixturevalue("valkey_server")
    return server.url




async def test_task_on_a_is_read_and_cancelled_through_b(valkey_server) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    a = TaskEngine(RedisTaskStore(valkey_server.url, prefix=prefix))
    b = TaskEngine(RedisTaskStore(valkey_server.url, prefix=prefix))
    started, stopped = anyio.Event(), anyio.Event()

    async def job() -> CallToolResult:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        raise AssertionError("unreachable")

    task = await a.start("alice", "stream_complete", job)
    await started.wait()
    assert (await b.get("alice", task.task_id)).status == "working"
    assert [t.task_id for t in await b.page("alice", None, 10)] == [task.task_id]
    await b.cancel("alice", task.task_id)
    with anyio.fail_after(WAIT):
        await stopped.wait()  # A's job was cancelled: B's mark reached A at its next lease renewal
        while (got := await b.get("alice", task.task_id)).status == "working":
            await anyio.sleep(b.tick_s)
    assert got.status == "cancelled"


async def test_result_stored_on_a_is_read_on_b(valkey_server) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    a = TaskEngine(RedisTaskStore(valkey_server.url, prefix=prefix))
    b = TaskEngine(RedisTaskStore(valkey_server.url, prefix=prefix), per_caller=1)

    async def job() -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="from A")], structured_content={"tool_calls": []})

    task = await a.start("alice", "complete", job)
    got = await b.wait("alice", task.task_id)
    assert got.result is not None and got.result["content"] == [{"type": "text", "text": "from A"}]
    assert got.result["structuredContent"] == {"tool_calls": []}  # empty lists stay lists
    blocker = await b.start("alice", "complete", anyio.sleep_forever)
    with pytest.raises(TooManyTasks):  # the finished task no longer counts; the working one does
        await b.start("alice", "complete", job)
    await b.cancel("alice", blocker.task_id)


async def test_working_task_never_expires_and_keeps_its_slot(where: str) -> None:
    from tests.conftest_valkey import Tick

    clock = Tick()
    if where.startswith("redis"):
        store = RedisTaskStore(where, prefix=f"t{uuid.uuid4().hex[:8]}:")
    else:
        store = SQLiteTaskStore(Path(where))
    engine = TaskEngine(store, per_caller=2, clock=clock)
    stopped = anyio.Event()

    async def job() -> CallToolResult:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        raise AssertionError("unreachable")

    held = [await engine.start("alice", "complete", job, ttl_ms=1) for _ in range(2)]
    clock.advance(5.0)  # past the TTL asked for and the minimum, within the lease
    deadline = time.time() + MIN_TTL_MS / 1000 + 0.2  # past them in real time too: Redis expires keys on its clock
    with anyio.fail_after(WAIT):  # until then and a lease renewal after the jump (or until a task is gone)
        while True:
            stored = [await engine.store.get(t.task_id, clock()) for t in held]
            if None in stored or (time.time() > deadline and all(s.lease > t.lease + 5 for s, t in zip(stored, held))):
                break
            await anyio.sleep(engine.tick_s)
    assert [(await engine.get("alice", t.task_id)).status for t in held] == ["working"] * 2
    assert {t.task_id for t in await engine.page("alice", None, 10)} == {t.task_id for t in held}
    with pytest.raises(TooManyTasks):
        await engine.start("alice", "complete", job, ttl_ms=1)
    assert (await engine.cancel("alice", held[0].task_id)).status == "cancelled"
    assert stopped.is_set()
    await engine.aclose()


async def test_a_callers_open_tasks_set_lives_as_long_as_its_longest_task_and_no_longer(valkey_server) -> None:
    """The set that counts a caller's open tasks (for `per_caller`) expires with the tasks it holds: a caller
    whose instance died and who never comes back leaves no key behind, and a renewal carries the set along."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = RedisTaskStore(valkey_server.url, prefix=prefix)
    engine = TaskEngine(store, lease_s=60.0)
    task = await engine.start("alice", "complete", anyio.sleep_forever)
    keys = (f"{prefix}task:{task.task_id}", f"{prefix}tasks:open:alice")

    def pttls() -> list[int]:
        with redis.Redis.from_url(valkey_server.url) as r, r.pipeline(transaction=True) as pipe:  # one instant
            return pipe.pttl(keys[0]).pttl(keys[1]).execute()

    task_ms, open_ms = pttls()
    assert 0 < task_ms == open_ms, (task_ms, open_ms)
    await store.renew(engine.instance, [task.task_id], time.time() + 3600, time.time())
    task_ms, open_ms = pttls()
    assert 3_600_000 < task_ms == open_ms, (task_ms, open_ms)
    await engine.cancel("alice", task.task_id)
    await engine.aclose()


async def test_killed_instances_task_reads_failed(where: str, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.task_holder", where, "0.5"], cwd=Path(__file__).parent.parent,
        env=child_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        task_id = await anyio.to_thread.run_sync(holder.stdout.readline)
        task_id = task_id.strip()
        assert task_id, "the holder printed no task id"
    finally:
        holder.kill()
        holder.wait()
    store = RedisTaskStore(where) if where.startswith("redis") else SQLiteTaskStore(Path(where))
    engine = TaskEngine(store)
    with anyio.fail_after(WAIT):
        while (got := await engine.get("alice", task_id)).status == "working":
            await anyio.sleep(0.1)
    assert got.status == "failed" and got.message == INSTANCE_GONE
    assert got.error is not None and got.error["message"] == INSTANCE_GONE


async def test_a_store_that_does_not_answer_degrades_to_direct_answers(provider, store, caplog) -> None:
    from mcp.shared.exceptions import MCPError

    from harness.processes import free_port
    from hive_mcp.tasks.policy import LONG_INPUT_CHARS
    from tests.clients import connect, mcp_server
    from harness.task_requests import raw

    engine = TaskEngine(RedisTaskStore(f"redis://127.0.0.1:{free_port()}/0", prefix="away:"))
    server = mcp_server(provider, store, tasks=engine)
    async with connect(server, "auto") as client:
        direct = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "x" * LONG_INPUT_CHARS}})
        assert "taskId" not in direct and direct["content"][0]["text"] == "default reply"
    async with connect(server, "legacy") as client:
        with pytest.raises(MCPError) as away:
            await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {}})
    assert away.value.code == -32603 and away.value.message.startswith("tasks are unavailable")
    assert "\n" not in away.value.message and "redis://" not in away.value.message


async def test_cancel_through_b_reaches_a_over_the_bus(provider, store, upstream, valkey_server) -> None:
    from hive_mcp.mcp.bus import RedisSubscriptionBus
    from harness.task_requests import raw, until_ended
    from harness.upstream import Reply
    from tests.clients import connect, mcp_server

    prefix, channel = f"t{uuid.uuid4().hex[:8]}:", f"tasks-{uuid.uuid4().hex[:8]}"
    # Lease renewals far apart: only the bus can bring the cancel to A within the wait.
    engines = [TaskEngine(RedisTaskStore(valkey_server.url, prefix=prefix), lease_s=600, tick_s=300) for _ in "ab"]
    buses = [RedisSubscriptionBus(valkey_server.url, channel=channel) for _ in "ab"]
    a, b = (mcp_server(provider, store, tasks=e, bus=bus) for e, bus in zip(engines, buses))
    upstream.script(Reply.stream(["one ", "two ", "three"], hold_after=1))
    async with connect(a, "legacy") as on_a, connect(b, "legacy") as on_b:
        with anyio.fail_after(WAIT):
            await buses[0].connected.wait()
            await buses[1].connected.wait()
        created = await raw(on_a, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"}, "task": {}})
        task_id = created["task"]["taskId"]
        assert await anyio.to_thread.run_sync(upstream.chunk_sent.wait, WAIT)
        await raw(on_b, "tasks/cancel", {"taskId": task_id})
        assert await anyio.to_thread.run_sync(upstream.client_gone.wait, WAIT)  # A's upstream request closed
        got = await until_ended(on_b, task_id)
    assert got["status"] == "cancelled"


async def test_input_asked_on_a_is_answered_through_b(where: str) -> None:
    from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult

    prefix = f"t{uuid.uuid4().hex[:8]}:"

    def engine() -> TaskEngine:
        if where.startswith("redis"):
            return TaskEngine(RedisTaskStore(where, prefix=prefix))
        return TaskEngine(SQLiteTaskStore(Path(where)))

    a, b = engine(), engine()
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    ask = ElicitRequest(params=ElicitRequestFormParams(message="Name?", requested_schema=schema))

    async def job():
        return InputRequiredResult(input_requests={"one": ask, "two": ask}, request_state="s1")

    async def resume(answers, state):
        names = " and ".join(answers[k]["content"]["name"] for k in ("one", "two"))
        return CallToolResult(content=[TextContent(type="text", text=f"{names} ({state})")])

    task = await a.start("alice", "complete", job, resume=resume)
    with anyio.fail_after(WAIT):
        while (got := await b.get("alice", task.task_id)).status != "input_required":
            await anyio.sleep(0.05)
    assert set(got.input_requests or {}) == {"one", "two"}
    assert got.input_requests["one"]["params"]["requestedSchema"]["required"] == ["name"]  # lists stay lists
    partial = await b.update("alice", task.task_id, {"one": {"action": "accept", "content": {"name": "Ann"}},
                                                     "zzz": {"ignored": True}})  # fmt: skip
    assert partial.status == "input_required" and set(partial.input_requests or {}) == {"two"}
    await b.update("alice", task.task_id, {"two": {"action": "accept", "content": {"name": "Bo"}}})
    done = await b.wait("alice", task.task_id)
    assert done.status == "completed" and done.result["content"][0]["text"] == "Ann and Bo (s1)"


async def test_tasks_list_takes_only_a_cursor_it_issued_on_any_instance(provider, store, where: str) -> None:
    """A cursor is the place of the page's last task (its creation time and id, base64): one of this caller's tasks
    as stored, so a cursor from A pages on B, and one that names no such task (forged: past every task, before
    every task, another id, another time) is -32602 in one line, not a page of everything or of nothing."""
    import base64

    from mcp.shared.exceptions import MCPError

    from harness.task_requests import raw
    from tests.clients import connect, mcp_server

    prefix = f"t{uuid.uuid4().hex[:8]}:"

    def engine() -> TaskEngine:
        store_ = RedisTaskStore(where, prefix=prefix) if where.startswith("redis") else SQLiteTaskStore(Path(where))
        return TaskEngine(store_, list_page=1)

    def cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    a, b = engine(), engine()
    async with connect(mcp_server(provider, store, tasks=a), "legacy") as on_a, \
            connect(mcp_server(provider, store, tasks=b), "legacy") as on_b:  # fmt: skip
        ids = [(await a.start("local", "complete", anyio.sleep_forever)).task_id for _ in range(2)]
        first = await raw(on_a, "tasks/list")
        second = await raw(on_b, "tasks/list", {"cursor": first["nextCursor"]})
        created, _, last = base64.urlsafe_b64decode(first["nextCursor"]).decode().partition("|")
        forged = [cursor("inf|x"), cursor("1.0|"), cursor(f"{created}|{ids[1]}x"),
                  cursor(f"{float(created) + 1}|{last}"), "not-a-cursor"]  # fmt: skip
        refused = []
        for bad in forged:
            with pytest.raises(MCPError) as caught:
                await raw(on_b, "tasks/list", {"cursor": bad})
            refused.append(caught.value)
        with pytest.raises(UnknownCursor):  # another caller's task is no place in this caller's list
            await b.page("bob", (float(created), last), 1)
        for task_id in ids:
            await a.cancel("local", task_id)
    assert [t["taskId"] for t in first["tasks"] + second["tasks"]] == ids[::-1] and "nextCursor" not in second
    assert [e.code for e in refused] == [-32602] * len(forged), refused
    assert all(e.message.startswith("cursor: ") and "\n" not in e.message for e in refused), refused
    await a.aclose()
    await b.aclose()


class HeldFinish(HeldEnd):
    """`finish` waits until a cancel has been asked for: the engine cancels its job in the same step as
    `request_cancel` returns, so the end is stored only after that cancel."""

    async def request_cancel(self, task_id: str) -> None:
        await self.store.request_cancel(task_id)
        self.go.set()


async def test_a_cancel_as_the_job_ends_answers_its_end_and_keeps_its_result(where: str) -> None:
    """`tasks/cancel` arriving while a job that has its result stores its end: the end is stored, told and answered
    (completed, its result kept), not cut off (read working, the notification skipped, the result lost)."""
    if where.startswith("redis"):
        store = HeldFinish(RedisTaskStore(where, prefix=f"t{uuid.uuid4().hex[:8]}:"))
    else:
        store = HeldFinish(SQLiteTaskStore(Path(where)))
    engine = TaskEngine(store)  # type: ignore[arg-type]
    told: list[TaskRecord] = []

    async def job() -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="made it")])

    async def on_end(ended: TaskRecord) -> None:
        told.append(ended)

    task = await engine.start("alice", "complete", job, on_end=on_end)
    with anyio.fail_after(WAIT):
        await store.finishing.wait()  # the job has its result and is storing its end
        answered = await engine.cancel("alice", task.task_id)
    stored = await engine.get("alice", task.task_id)
    assert answered.status == "completed", answered
    assert stored.status == "completed" and stored.result is not None, stored
    assert stored.result["content"] == [{"type": "text", "text": "made it"}]
    assert [t.status for t in told] == ["completed"]
    await engine.aclose()
