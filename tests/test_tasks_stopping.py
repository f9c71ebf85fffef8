"""An instance that stops (SIGTERM, the end of a stdio session) and the tasks it runs.

Its tasks get the grace period its calls get: one that ends within it keeps its result. One still running when
the grace period is over, or when serving ends, reads `failed` at once, saying the instance stopped; without
that it would read `working` until its lease ran out. Every end here is read back from the store itself by
another store object, so the lease rule (which reads an expired lease as failed) cannot stand in for it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from harness.task_requests import raw
from harness.upstream import Reply, Upstream
from hive_mcp.jsonrpc import SHUTDOWN_ERROR_CODE
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.tasks import TaskEngine, TaskRecord
from hive_mcp.tasks.engine import INSTANCE_GONE, InstanceStopping
from hive_mcp.tasks.policy import LONG_INPUT_CHARS
from hive_mcp.tasks.records import CANCELLED, COMPLETED, FAILED
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from tests.clients import connect, mcp_server
from tests.held_tasks import HeldEnd
from tests.servers import STARTUP_S, HttpServer, Session, exited_cleanly, server_env, wait_exit

pytestmark = pytest.mark.anyio
LEASE_S = 600.0
"""No lease runs out during a test: an end the store holds was written by the instance that stopped."""
GRACE_S = 3.0
LONG = "x" * LONG_INPUT_CHARS  # predicted long: a 2026 client that declared the extension gets a task


async def stored(path: Path, task_id: str) -> TaskRecord:
    store = SQLiteTaskStore(path)
    try:
        task = await store.get(task_id, time.time())
    finally:
        await store.aclose()
    assert task is not None, task_id
    return task


def engine_in(tmp_path: Path) -> tuple[Path, TaskEngine]:
    """A task engine on a SQLite file in `tmp_path`, and the file (to read the ends back with another store)."""
    path = tmp_path / "tasks.sqlite3"
    return path, TaskEngine(SQLiteTaskStore(path), lease_s=LEASE_S)


def answer(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


@asynccontextmanager
async def stopping_around_a_held_task(
    tmp_path: Path,
) -> AsyncIterator[tuple[Path, TaskEngine, TaskRecord, anyio.Event, TaskGroup]]:
    """An engine (and its SQLite file) running alice's task, whose job answers "done in time" once the event is
    set, with `stop(600)` begun in the task group: the body runs while the stop's grace period does."""
    path, engine = engine_in(tmp_path)
    release = anyio.Event()

    async def job() -> CallToolResult:
        await release.wait()
        return answer("done in time")

    task = await engine.start("alice", "complete", job)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.stop, 600.0)
            yield path, engine, task, release, tg


@pytest.mark.parametrize("grace_s", [0.0, 0.05])
async def test_a_task_still_running_when_the_instance_stops_reads_failed_at_once(tmp_path: Path, grace_s) -> None:
    path, engine = engine_in(tmp_path)
    task = await engine.start("alice", "complete", anyio.sleep_forever)
    await engine.stop(grace_s)
    ended = await stored(path, task.task_id)
    assert ended.status == FAILED and ended.message == INSTANCE_GONE, ended
    assert ended.error is not None and ended.error["message"] == INSTANCE_GONE
    assert engine.running() == []


async def test_a_task_that_ends_within_the_grace_period_keeps_its_result(tmp_path: Path) -> None:
    """The end of serving (`aclose`) while the grace period runs waits for it rather than cutting it short."""
    async with stopping_around_a_held_task(tmp_path) as (path, engine, task, release, tg):
        tg.start_soon(engine.aclose)
        await anyio.wait_all_tasks_blocked()  # both are waiting on the job
        assert engine.running() == [task.task_id]
        release.set()
    ended = await stored(path, task.task_id)
    assert ended.status == COMPLETED and ended.result is not None, ended
    assert ended.result["content"] == [{"type": "text", "text": "done in time"}]


@pytest.mark.parametrize("fails_winding_down", [False, True])
async def test_a_task_the_client_cancelled_still_winding_down_as_the_instance_stops_reads_cancelled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fails_winding_down: bool
) -> None:
    """The client's cancel came first: the job, still tidying up when the stop runs, ends as the client asked
    (cancelled), also when its tidying up fails (what it tells its client, say, reaches no one once the instance
    stops), and the stop does not count it among the tasks it cut short."""
    path, engine = engine_in(tmp_path)
    winding, let_go = anyio.Event(), anyio.Event()

    async def job() -> CallToolResult:
        try:
            await anyio.sleep_forever()
        finally:
            winding.set()
            await let_go.wait()
            if fails_winding_down:
                raise anyio.BrokenResourceError("the session closed as the instance stopped")
        raise AssertionError("unreachable")

    task = await engine.start("alice", "complete", job)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.cancel, "alice", task.task_id)
            await winding.wait()
            tg.start_soon(engine.stop, 0.0)
            await anyio.wait_all_tasks_blocked()
            let_go.set()
    ended = await stored(path, task.task_id)
    assert ended.status == CANCELLED, ended
    assert "stopped unfinished" not in caplog.text, caplog.text


async def test_a_task_storing_its_end_as_the_instance_stops_keeps_it_and_is_not_counted_as_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = HeldEnd(SQLiteTaskStore(path))
    engine = TaskEngine(store, lease_s=LEASE_S)  # type: ignore[arg-type]

    async def job() -> CallToolResult:
        return answer("done")

    task = await engine.start("alice", "complete", job)
    with anyio.fail_after(30):
        await store.finishing.wait()
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.stop, 0.0)
            await anyio.wait_all_tasks_blocked()
            store.go.set()
    ended = await stored(path, task.task_id)
    assert ended.status == COMPLETED, ended
    assert "stopped unfinished" not in caplog.text, caplog.text


async def test_a_task_the_stop_cut_that_still_ends_with_its_result_is_not_counted_as_stopped_unfinished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stop cuts a job that has no end yet, but the job was in its last step (storing what it has) and ends
    with its result all the same: the task reads completed, and the line counts only the tasks that do read
    failed (here the other one, which had no end to give)."""
    path, engine = engine_in(tmp_path)

    async def finishing() -> CallToolResult:
        try:
            await anyio.sleep_forever()
        finally:
            return answer("stored as it stopped")  # noqa: B012 - its last step ends it whatever cut it

    kept = await engine.start("alice", "complete", finishing)
    cut = await engine.start("alice", "complete", anyio.sleep_forever)
    await anyio.wait_all_tasks_blocked()
    await engine.stop(0.0)
    assert (await stored(path, kept.task_id)).status == COMPLETED
    assert (await stored(path, cut.task_id)).status == FAILED
    assert "1 task(s) stopped unfinished" in caplog.text, caplog.text
    assert "2 task(s) stopped unfinished" not in caplog.text, caplog.text


async def test_a_task_whose_whole_reply_came_in_as_the_grace_period_ended_reads_completed_and_is_charged_it(
    provider, store, upstream: Upstream, tmp_path: Path
) -> None:
    """A streamed task's reply arrives whole (the task reading the provider's stream has ended) and the grace
    period ends in that very turn of the loop, before the job's own task has woken to take the reply: the cut
    must not be delivered in its place. The task reads completed with the whole text, and the ledger charges the
    reply at the usage the upstream gave (11 in, 7 out), not as a call cut short (estimated)."""
    path, engine = engine_in(tmp_path)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets.from_settings(day=None, month=None, section={}),
                  provider)  # fmt: skip
    upstream.script(Reply.stream(["first half, ", "second half"], hold_after=1))
    async with connect(mcp_server(provider, store, tasks=engine, spend=spend), "legacy") as client:
        created = await raw(client, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"},
                                                   "task": {}})  # fmt: skip
        assert await anyio.to_thread.run_sync(upstream.chunk_sent.wait, 30)
        [reader] = [t for t in asyncio.all_tasks() if t.get_name().endswith(".read_stream")]
        reader.add_done_callback(lambda _: engine.expire())  # the grace period ends as the reply is whole
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(engine.stop, 600.0)
                upstream.release()
    ended = await stored(path, created["task"]["taskId"])
    assert ended.status == COMPLETED, ended
    assert ended.result is not None and ended.result["content"] == [{"type": "text", "text": "first half, second half"}]
    [call] = spend.settled().calls(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert (call.input_tokens, call.output_tokens, call.estimated) == (11, 7, False), call


async def test_a_task_asked_for_while_the_instance_stops_is_refused_and_never_stored(tmp_path: Path) -> None:
    """A request already on the wire when shutdown began can still ask for a task. Started, it would run where
    no drain waits for it (the drain's grace period may be over) and read `working` until its lease ran out;
    it is refused in one line instead, while the stop's grace period runs and after it."""
    async with stopping_around_a_held_task(tmp_path) as (path, engine, first, release, _):
        await anyio.wait_all_tasks_blocked()  # the stop waits on the job
        with pytest.raises(InstanceStopping, match=r"^hive-mcp is shutting down: the task was not started"):
            await engine.start("bob", "complete", anyio.sleep_forever)
        release.set()
    with pytest.raises(InstanceStopping) as after:
        await engine.start("bob", "complete", anyio.sleep_forever)
    assert "\n" not in str(after.value), after.value
    assert await engine.page("bob", None, 10) == [] and engine.running() == []
    assert (await stored(path, first.task_id)).status == COMPLETED


class HeldCreate(SQLiteTaskStore):
    """A task store whose `create` stores the task, then waits for `go` before it answers."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.created: TaskRecord | None = None
        self.stored = anyio.Event()
        self.go = anyio.Event()

    async def create(self, task: TaskRecord, cap: int, now: float) -> bool:
        made = await super().create(task, cap, now)
        self.created = task
        self.stored.set()
        await self.go.wait()
        return made


async def test_a_task_stored_while_the_whole_stop_ran_is_ended_as_gone_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    store = HeldCreate(path)
    engine = TaskEngine(store, lease_s=LEASE_S)
    refused: list[BaseException] = []

    async def ask() -> None:
        with pytest.raises(InstanceStopping) as caught:
            await engine.start("alice", "complete", anyio.sleep_forever)
        refused.append(caught.value)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await store.stored.wait()
            await engine.stop(0.0)
            store.go.set()
    assert len(refused) == 1 and engine.running() == []
    assert store.created is not None
    ended = await stored(path, store.created.task_id)
    assert ended.status == FAILED and ended.message == INSTANCE_GONE, ended


async def test_a_2025_client_asking_a_stopping_instance_for_a_task_reads_the_refusal(provider, store, tmp_path) -> None:
    """Over MCP: the JSON-RPC error of a call cut off by shutdown (its code, and a line saying to send it again)."""
    _, engine = engine_in(tmp_path)
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        await engine.stop(0.0)
        with pytest.raises(MCPError) as refused:
            await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {}})
    assert refused.value.code == SHUTDOWN_ERROR_CODE, refused.value
    assert "shutting down" in refused.value.message and "send the call again" in refused.value.message


async def test_a_2026_call_a_stopping_instance_would_have_made_a_task_is_answered_directly(
    provider, store, tmp_path, upstream: Upstream
) -> None:
    """The server, not the client, chose the task: the call is answered as any call in the grace period is."""
    _, engine = engine_in(tmp_path)
    upstream.script(Reply.text("answered directly"))
    async with connect(mcp_server(provider, store, tasks=engine), "auto") as client:
        await engine.stop(0.0)
        answered = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": LONG}})
    assert answered.get("resultType") != "task", answered
    assert answered["content"] == [{"type": "text", "text": "answered directly"}], answered


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_task_finish_within_the_grace_period_and_fails_the_one_that_cannot(
    upstream: Upstream, tmp_path: Path, workers: int
) -> None:
    """Two tasks over HTTP, a 2025-11-25 client, one process or two workers; SIGTERM; then one task's stream is
    let go and the other's upstream hangs. The first keeps its whole text; the second reads failed in the store as soon as the process
    has exited, where nothing else would have ended it before a reader found its lease run out."""
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    env.update(HIVE_MCP_SHUTDOWN_GRACE_S=str(GRACE_S))
    server = HttpServer("http", env, tmp_path, "tasks-sigterm", args=["--workers", str(workers)])
    upstream.script(Reply.stream(["first half, ", "second half"], hold_after=1), Reply.hang())
    session: Session | None = None
    try:
        server.wait_loaded(workers)  # the waits below are bounded as calls, not as litellm's import too
        session = Session(server.client_target, "legacy")

        async def go(client: Client) -> list[str]:
            ids = []
            for i in range(2):
                created = await raw(client, "tools/call", {"name": "stream_complete", "arguments": {"prompt": f"{i}"},
                                                           "task": {}})  # fmt: skip
                ids.append(created["task"]["taskId"])
            with anyio.fail_after(30):
                while len(upstream.chat_requests()) < 2 or not upstream.chunk_sent.is_set():
                    await anyio.sleep(0.02)  # polling counters: the two requests have no one event
            return ids

        ids = session.run(go, timeout=60)
        signalled = time.monotonic()
        server.signal_stop()
        deadline = time.monotonic() + 30
        while "task(s) running" not in server.stderr():  # the log is the only sign it counted its tasks: polled
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        upstream.release()
        rc = wait_exit(server.proc, GRACE_S + 20)
        exited = time.monotonic()
    finally:
        server.terminate()
        if session is not None:
            session.close()
    log = exited_cleanly(server, rc)
    assert "task(s) running get up to" in log and log.count("1 task(s) stopped unfinished") == 1, log
    assert exited - signalled <= GRACE_S + 15, exited - signalled
    path = tmp_path / "hive-home" / "hive-mcp-tasks.sqlite3"
    ends = {task.status: task for task in (anyio.run(stored, path, task_id) for task_id in ids)}
    assert set(ends) == {COMPLETED, FAILED}, ends  # which task got which reply is the upstream's order
    finished, cut = ends[COMPLETED], ends[FAILED]
    assert finished.status == COMPLETED, finished
    assert finished.result is not None and finished.result["content"][0]["text"] == "first half, second half"
    assert cut.status == FAILED and cut.message == INSTANCE_GONE, cut


async def test_the_end_of_a_stdio_session_fails_its_running_task_at_once(upstream: Upstream, tmp_path: Path) -> None:
    """The client closes the pipe while a task streams: the server's last act is to store it as failed."""
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    params = StdioServerParameters(command=sys.executable, args=["-m", "hive_mcp"], env=env, cwd=str(tmp_path))
    upstream.script(Reply.stream(["first half, ", "second half"], hold_after=1))
    with open(tmp_path / "stderr.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            created = await raw(client, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"},
                                                       "task": {}})  # fmt: skip
            # The job waits for the provider (litellm's import, begun as the server started): bounded as start-up is.
            assert await anyio.to_thread.run_sync(upstream.chunk_sent.wait, STARTUP_S)
    cut = await stored(tmp_path / "hive-home" / "hive-mcp-tasks.sqlite3", created["task"]["taskId"])
    assert cut.status == FAILED and cut.message == INSTANCE_GONE, (cut, (tmp_path / "stderr.log").read_text())
