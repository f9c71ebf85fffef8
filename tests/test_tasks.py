"""Tasks through the SDK's real client, in process, both protocol generations: `complete` and `stream_complete`
run detached from their request on the task engine, against the scripted upstream through litellm."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
import pytest
from mcp.shared.exceptions import MCPError

from harness.upstream import Reply, Upstream
from hive_mcp.tasks import TaskEngine, TaskNotFound, TooManyTasks
from hive_mcp.tasks.policy import LONG_INPUT_CHARS
from hive_mcp.tasks.records import MIN_TTL_MS
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from tests.clients import WAIT, connect, mcp_server, wait_thread_event
from tests.conftest_valkey import Tick
from harness.task_requests import TaskStatuses, raw, until_ended

pytestmark = pytest.mark.anyio
LONG = "x" * LONG_INPUT_CHARS  # predicted long: a 2026 client that declared the extension gets a task


@pytest.fixture
def engine(tmp_path) -> TaskEngine:
    return TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"))


async def test_legacy_capability_and_task_support(provider, store, engine) -> None:
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        assert client.server_capabilities.tasks is not None
        assert client.server_capabilities.tasks.requests is not None
        listed = {t["name"]: t for t in (await raw(client, "tools/list"))["tools"]}
    assert listed["complete"]["execution"] == {"taskSupport": "optional"}
    assert listed["stream_complete"]["execution"] == {"taskSupport": "optional"}
    assert "execution" not in listed["list_models"]


async def test_legacy_create_poll_result_list(provider, store, engine, upstream: Upstream) -> None:
    upstream.script(Reply.text("the answer"))
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"},
                                                   "task": {"ttl": 60_000}})  # fmt: skip
        task = created["task"]
        assert task["status"] == "working" and task["ttl"] == 60_000 and task["pollInterval"] >= 50
        result = await raw(client, "tasks/result", {"taskId": task["taskId"]})
        assert result["content"] == [{"type": "text", "text": "the answer"}]
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
        got = await raw(client, "tasks/get", {"taskId": task["taskId"]})
        assert got["status"] == "completed" and "result" not in got
        listed = await raw(client, "tasks/list")
        assert [t["taskId"] for t in listed["tasks"]] == [task["taskId"]]
        with pytest.raises(MCPError) as ended:
            await raw(client, "tasks/cancel", {"taskId": task["taskId"]})
        assert ended.value.code == -32602


async def test_legacy_list_newest_first_with_cursors(provider, store, tmp_path) -> None:
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"), list_page=2)
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        ids = []
        for _ in range(5):
            created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {}})
            ids.append(created["task"]["taskId"])
        seen, cursor, pages = [], None, 0
        while True:
            page = await raw(client, "tasks/list", {"cursor": cursor} if cursor else {})
            pages += 1
            seen += [t["taskId"] for t in page["tasks"]]
            cursor = page.get("nextCursor")
            if cursor is None:
                break
        with pytest.raises(MCPError) as bad:
            await raw(client, "tasks/list", {"cursor": "not-a-cursor"})
    assert seen == ids[::-1] and pages == 3
    assert bad.value.code == -32602


async def test_modern_task_inlines_result_and_acks(provider, store, engine, upstream: Upstream) -> None:
    upstream.script(Reply.text("long answer"))
    async with connect(mcp_server(provider, store, tasks=engine), "auto") as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": LONG}})
        assert created["resultType"] == "task" and "task" not in created and "result" not in created
        assert isinstance(created["ttlMs"], int) and isinstance(created["pollIntervalMs"], int)
        assert "ttl" not in created and "pollInterval" not in created
        got = await until_ended(client, created["taskId"])
        assert got["status"] == "completed" and got["resultType"] == "complete"
        assert got["result"]["content"] == [{"type": "text", "text": "long answer"}]
        assert "io.modelcontextprotocol/related-task" not in (got["result"].get("_meta") or {})
        ack = await raw(client, "tasks/cancel", {"taskId": created["taskId"]})
        assert ack.get("resultType") == "complete" and not {"taskId", "status", "result"} & ack.keys()
        for method in ("tasks/result", "tasks/list"):
            with pytest.raises(MCPError) as gone:
                await raw(client, method, {"taskId": created["taskId"]})
            assert gone.value.code == -32601
        with pytest.raises(MCPError) as unknown:
            await raw(client, "tasks/get", {"taskId": "no-such-task"})
        assert unknown.value.code == -32602


async def test_modern_without_extension_answers_directly_and_refuses_tasks_methods(provider, store, engine) -> None:
    async with connect(mcp_server(provider, store, tasks=engine), "auto") as client:
        plain = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": LONG}}, tasks=False)
        assert "taskId" not in plain and plain["content"][0]["text"] == "default reply"
        short = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}})
        assert "taskId" not in short  # not predicted long: a direct answer
        with pytest.raises(MCPError) as refused:
            await raw(client, "tasks/get", {"taskId": "x"}, tasks=False)
    assert refused.value.code == -32021


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_cancel_mid_stream_closes_upstream(provider, store, engine, upstream: Upstream, era: str) -> None:
    upstream.script(Reply.stream(["one ", "two ", "three"], hold_after=1))
    arguments = {"prompt": LONG if era == "auto" else "hi"}
    async with connect(mcp_server(provider, store, tasks=engine), era) as client:
        params = {"name": "stream_complete", "arguments": arguments} | ({"task": {}} if era == "legacy" else {})
        created = await raw(client, "tools/call", params)
        task_id = (created.get("task") or created)["taskId"]
        assert await anyio.to_thread.run_sync(upstream.chunk_sent.wait, 10)
        await raw(client, "tasks/cancel", {"taskId": task_id})
        assert await anyio.to_thread.run_sync(upstream.client_gone.wait, 10)  # the upstream request closed
        got = await until_ended(client, task_id)
    assert got["status"] == "cancelled"


async def test_ttl_expiry(provider, store, tmp_path, upstream: Upstream) -> None:
    clock = Tick()
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"), clock=clock)
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"},
                                                   "task": {"ttl": 5_000}})  # fmt: skip
        task_id = created["task"]["taskId"]
        await raw(client, "tasks/result", {"taskId": task_id})
        clock.advance(4.0)
        assert (await raw(client, "tasks/get", {"taskId": task_id}))["status"] == "completed"  # kept for its TTL
        clock.advance(1.5)
        with pytest.raises(MCPError) as expired:
            await raw(client, "tasks/get", {"taskId": task_id})
    assert expired.value.code == -32602


async def test_working_task_outlives_a_tiny_ttl(provider, store, tmp_path, upstream: Upstream) -> None:
    clock = Tick()
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"), per_caller=2, clock=clock)
    upstream.script(*[Reply.stream(["one ", "two"], hold_after=1)] * 2)
    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        ids = []
        for _ in range(2):
            created = await raw(client, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"},
                                                       "task": {"ttl": 1}})  # fmt: skip
            assert created["task"]["ttl"] == MIN_TTL_MS  # raised to the server's minimum
            ids.append(created["task"]["taskId"])
        clock.advance(MIN_TTL_MS / 1000 + 5)  # well past the TTL, within the lease
        assert [(await raw(client, "tasks/get", {"taskId": i}))["status"] for i in ids] == ["working"] * 2
        assert {t["taskId"] for t in (await raw(client, "tasks/list"))["tasks"]} == set(ids)
        with pytest.raises(MCPError) as refused:  # both still count toward the cap
            await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {"ttl": 1}})
        assert "too many tasks" in refused.value.message
        for task_id in ids:
            await raw(client, "tasks/cancel", {"taskId": task_id})
            assert (await until_ended(client, task_id))["status"] == "cancelled"
        clock.advance(MIN_TTL_MS / 1000 + 0.5)  # its TTL runs from its end
        with pytest.raises(MCPError) as expired:
            await raw(client, "tasks/get", {"taskId": ids[0]})
    assert expired.value.code == -32602


async def test_ttl_is_capped(tmp_path) -> None:
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "t.sqlite3"), ttl_s=10, max_ttl_s=20)
    never = anyio.Event()

    async def job():
        await never.wait()

    asked = await engine.start("alice", "complete", job, ttl_ms=10**9)
    default = await engine.start("alice", "complete", job)
    assert asked.ttl_ms == 20_000 and default.ttl_ms == 10_000
    await engine.aclose()


async def test_another_callers_task_is_not_found_and_not_listed(tmp_path) -> None:
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "t.sqlite3"), admins=["root"])
    release = anyio.Event()

    async def job():
        await release.wait()
        from mcp_types import CallToolResult, TextContent

        return CallToolResult(content=[TextContent(type="text", text="mine")])

    task = await engine.start("alice", "complete", job)
    with pytest.raises(TaskNotFound):
        await engine.get("bob", task.task_id)
    with pytest.raises(TaskNotFound):
        await engine.cancel("bob", task.task_id)
    assert await engine.page("bob", None, 10) == []
    assert (await engine.get("root", task.task_id)).owner == "alice"  # admins see every caller's by id
    release.set()
    assert (await engine.wait("alice", task.task_id)).result["content"][0]["text"] == "mine"


async def test_unfinished_tasks_per_caller_are_capped(provider, store, tmp_path) -> None:
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "t.sqlite3"), per_caller=2)
    never = anyio.Event()

    async def job():
        await never.wait()

    await engine.start("alice", "complete", job)
    await engine.start("alice", "complete", job)
    with pytest.raises(TooManyTasks, match="HIVE_MCP_TASKS_PER_CALLER"):
        await engine.start("alice", "complete", job)
    await engine.start("bob", "complete", job)  # another caller's count is its own
    await engine.aclose()


async def test_a_cancelled_task_is_charged_what_its_stream_produced(
    provider, store, engine, upstream: Upstream, tmp_path
) -> None:
    import mcp_types as types

    from hive_mcp.spend import SQLiteBackend, Spend
    from tests.spend_calls import EPOCH, MAX_TOKENS, WORDS, charged, one_call_budget

    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    produced = "".join(WORDS[:38])
    text: list[str] = []
    all_relayed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ProgressNotification) and message.params.message:
            text.append(message.params.message)
            if "".join(text) == produced:
                all_relayed.set()

    upstream.script(Reply.stream(WORDS, hold_after=38))
    server = mcp_server(provider, store, tasks=engine, spend=spend, progress_interval_s=0.01)
    async with connect(server, "legacy", message_handler=on_message) as client:
        arguments = {"prompt": "hello", "max_tokens": MAX_TOKENS}
        params = {"name": "stream_complete", "task": {}, "_meta": {"progressToken": 7}, "arguments": arguments}
        created = await raw(client, "tools/call", params)
        task_id = created["task"]["taskId"]
        with anyio.fail_after(10):
            await all_relayed.wait()  # every word the upstream sent before it held has been produced
        await raw(client, "tasks/cancel", {"taskId": task_id})
        assert await anyio.to_thread.run_sync(upstream.client_gone.wait, 10)
        assert (await until_ended(client, task_id))["status"] == "cancelled"
    [call] = spend.settled().calls(EPOCH)
    assert call.cost == charged(provider, "hello", produced)


async def test_legacy_task_progress_carries_the_related_task_while_the_client_listens(
    provider, store, engine, upstream: Upstream
) -> None:
    import mcp_types as types

    heard: list[types.ProgressNotificationParams] = []
    relayed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ProgressNotification) and message.params.progress_token == "p1":
            heard.append(message.params)
            if "two" in "".join(p.message or "" for p in heard):
                relayed.set()

    upstream.script(Reply.stream(["one ", "two ", "three"], hold_after=2))
    server = mcp_server(provider, store, tasks=engine, progress_interval_s=0.01)
    async with connect(server, "legacy", message_handler=on_message) as client:
        created = await raw(client, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"},
                                                   "task": {}, "_meta": {"progressToken": "p1"}})  # fmt: skip
        task_id = created["task"]["taskId"]
        with anyio.fail_after(10):
            await relayed.wait()  # text relayed after the CreateTaskResult, while the task works
        upstream.release()
        result = await raw(client, "tasks/result", {"taskId": task_id})
    assert result["content"][0]["text"] == "one two three"
    assert all(p.meta == {"io.modelcontextprotocol/related-task": {"taskId": task_id}} for p in heard)


async def test_a_task_survives_its_client_disconnecting(provider, store, engine, upstream: Upstream) -> None:
    upstream.script(Reply.stream(["one ", "two ", "three"], hold_after=1))
    server = mcp_server(provider, store, tasks=engine)
    async with connect(server, "legacy") as first:
        created = await raw(first, "tools/call", {"name": "stream_complete", "arguments": {"prompt": "hi"},
                                                  "task": {}, "_meta": {"progressToken": "gone"}})  # fmt: skip
        assert await anyio.to_thread.run_sync(upstream.chunk_sent.wait, 10)
    upstream.release()  # the stream goes on after its client has gone
    async with connect(server, "legacy") as second:
        result = await raw(second, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert result["content"][0]["text"] == "one two three" and not result["isError"]
    assert upstream.clients_gone == 0  # the upstream request was never cut


async def test_a_reasoning_model_makes_a_2026_call_a_task_unasked(provider, store, engine) -> None:
    from hive_mcp.llms.static import StaticCatalogue
    from tests.conftest import MODEL

    class Reasoning(StaticCatalogue):
        def groups(self):
            return [g.model_copy(update={"supports_reasoning": True}) for g in super().groups()]

    server = mcp_server(provider, store, tasks=engine, catalogue=Reasoning(MODEL))
    async with connect(server, "auto") as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}})
        assert created["resultType"] == "task"
        assert (await until_ended(client, created["taskId"]))["result"]["content"][0]["text"] == "default reply"
        direct = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}}, tasks=False)
    assert "taskId" not in direct  # a client without the extension is answered directly all the same


async def test_deciding_whether_a_call_becomes_a_task_does_not_hold_the_event_loop(provider, store, engine) -> None:
    """What the catalogue says of a model (litellm's facts, read on its first use) can take seconds while litellm
    loads: the decision reads it off the event loop, so another session is answered meanwhile."""
    from hive_mcp.llms.static import StaticCatalogue
    from tests.conftest import MODEL

    asked, answered = threading.Event(), threading.Event()
    reads: list[bool] = []  # each read of the catalogue: whether the other session was answered during it

    class Slow(StaticCatalogue):
        def groups(self):
            asked.set()
            reads.append(answered.wait(WAIT))
            return super().groups()

    server = mcp_server(provider, store, tasks=engine, catalogue=Slow(MODEL))
    async with connect(server, "auto") as client, connect(server, "auto") as other:
        async with anyio.create_task_group() as tg:
            tg.start_soon(raw, client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}})
            assert await wait_thread_event(asked)
            await other.list_tools()
            answered.set()
    assert reads and all(reads), reads


@pytest.mark.parametrize("reply", ["answer", "refusal"])
async def test_a_tasks_result_is_the_direct_calls(provider, store, engine, upstream: Upstream, reply: str) -> None:
    def script() -> None:
        upstream.script(Reply.text("same answer") if reply == "answer" else Reply.error(400, "scripted refusal"))

    def comparable(result: dict) -> dict:
        structured = {k: v for k, v in (result.get("structuredContent") or {}).items()
                      if k not in ("conversation_id", "dump_id", "dump_uri")}  # fmt: skip
        text = result["content"][0]["text"]
        structured["content"] = structured["content"].split("hive://")[0]  # a failure's line names its own dump
        return {"text": text.split("hive://")[0], "isError": result.get("isError"), "structured": structured}

    async with connect(mcp_server(provider, store, tasks=engine), "legacy") as client:
        script()
        direct = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}})
        script()
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {}})
        tasked = await raw(client, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert comparable(tasked) == comparable(direct)
    assert bool(direct.get("isError")) == (reply == "refusal")
    if reply == "refusal":  # the failure left its dump, named as a direct call's is
        assert "hive://failed-requests/" in tasked["content"][0]["text"]
        assert tasked["content"][0]["text"] != direct["content"][0]["text"]  # a dump of its own


@pytest.mark.parametrize(
    ("arguments", "task"),
    [
        ({"prompt": "hi"}, False),  # the default model, fast
        ({"prompt": "hi", "model": "smart"}, True),
        ({"prompt": "hi", "models": ["fast", "quick"]}, False),
        ({"prompt": "hi", "models": ["fast", "smart"]}, True),  # as long as its slowest model
        ({"prompt": "hi", "models": ["fast", "quick"], "judge": "smart"}, True),  # the judge answers last
    ],
)
async def test_a_call_over_several_models_is_a_task_when_any_of_them_reasons(arguments, task: bool) -> None:
    from mcp_types import CallToolRequestParams

    from hive_mcp.mcp.task_tools import completion_task_tools
    from tests.catalogues import two_groups

    tools = completion_task_tools(two_groups(smart_facts={"supports_reasoning": True}), "fast")
    decide = tools["complete"].decide
    assert await decide(CallToolRequestParams(name="complete", arguments=arguments)) is task


async def test_a_tool_error_fails_a_2025_task_and_completes_a_2026_one(provider, store, engine, upstream) -> None:
    """2025-11-25: a task whose tool result has `isError` reads `failed` ("for tool calls specifically, this includes
    cases where the tool call result has isError set to true"), in `tasks/get`, `tasks/list` and the status
    notification, its `statusMessage` the error's first line; `tasks/result` still answers that result. The 2026
    extension says the opposite (`completed`, the result inlined; `failed` is for JSON-RPC errors only)."""
    statuses = TaskStatuses()
    server = mcp_server(provider, store, tasks=engine)
    upstream.script(Reply.error(400, "scripted refusal"))
    async with connect(server, "legacy", extensions=[statuses]) as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": "hi"}, "task": {}})
        task_id = created["task"]["taskId"]
        result = await raw(client, "tasks/result", {"taskId": task_id})
        got = await raw(client, "tasks/get", {"taskId": task_id})
        listed = await raw(client, "tasks/list")
        told = await statuses.wait(1)
    assert result["isError"] is True and "scripted refusal" in result["content"][0]["text"], result
    assert got["status"] == "failed", got
    line = got.get("statusMessage") or ""
    assert "scripted refusal" in line and "\n" not in line and line in result["content"][0]["text"], got
    assert [(t["taskId"], t["status"]) for t in listed["tasks"]] == [(task_id, "failed")]
    assert [(n.task_id, n.status, n.status_message) for n in told] == [(task_id, "failed", line)]
    upstream.script(Reply.error(400, "scripted refusal"))
    async with connect(server, "auto") as client:
        created = await raw(client, "tools/call", {"name": "complete", "arguments": {"prompt": LONG}})
        modern = await until_ended(client, created["taskId"])
    assert modern["status"] == "completed" and modern["result"]["isError"] is True, modern


async def test_a_task_asked_of_a_tool_without_task_support_is_refused(provider, store, engine, mode: str) -> None:
    """2025-11-25: a `tools/call` carrying `task` for a tool with no `execution.taskSupport` (forbidden) is -32601 in
    one line, not run; at 2026-07-28 the server alone decides what becomes a task and `task` is no parameter: the
    call is answered directly, as a `complete` carrying it is."""
    async with connect(mcp_server(provider, store, tasks=engine), mode) as client:
        if mode == "legacy":
            with pytest.raises(MCPError) as refused:
                await raw(client, "tools/call", {"name": "list_models", "arguments": {}, "task": {}})
            assert refused.value.code == -32601 and "\n" not in refused.value.message, refused.value
            assert "list_models" in refused.value.message and "task" in refused.value.message, refused.value
        else:
            direct = await raw(client, "tools/call", {"name": "list_models", "arguments": {}, "task": {}})
            assert "taskId" not in direct and direct["structuredContent"]["default_model"], direct
