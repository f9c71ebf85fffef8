"""`observe.calls.CallWatch`, the entry point the call chain wraps each tool call in: calls in flight, the call's
metrics, its overhead (wall time minus what the provider waited on the upstream) told in `_meta` and for the
HTTP header, and a call that never finished counted as cancelled. Through a real provider call where it needs
one (litellm's HTTP path to the scripted upstream)."""

from __future__ import annotations

import anyio
import pytest
from prometheus_client import REGISTRY

from hive_mcp.observe import labels
from hive_mcp.observe.calls import CallWatch
from hive_mcp.observe.overhead import OVERHEAD_META_KEY
from harness.upstream import Reply
from mcp_types import CallToolResult

from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.limits import Limits
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from hive_mcp.tasks import TaskEngine
from hive_mcp.tasks.sqlite_store import SQLiteTaskStore
from tests.clients import connect, mcp_server, until
from tests.conftest import MODEL
from tests.provider_calls import USER


def value(name: str, **label_values: str) -> float:
    return REGISTRY.get_sample_value(name, label_values) or 0.0


@pytest.fixture
def named():
    labels.name_models([MODEL], [MODEL])
    yield
    labels.name_models([], [])


async def test_a_watched_call_is_in_flight_then_counted_with_its_overhead(warm, upstream, named):
    ok = dict(tool="complete", group=MODEL, deployment=MODEL, outcome="ok", error_category="none")
    calls, overheads = value("hive_mcp_calls_total", **ok), value("hive_mcp_overhead_seconds_count", tool="complete")
    in_flight = value("hive_mcp_calls_in_flight", tool="complete")
    upstream.script(Reply.text("Paris", delay=0.2))
    with CallWatch("complete", caller="local") as watch:
        assert value("hive_mcp_calls_in_flight", tool="complete") == in_flight + 1
        reply = await warm.acomplete(USER)
        meta = watch.finished(
            "ok", group=MODEL, deployment=MODEL, upstream_wait_s=reply.upstream_wait_s,
            input_tokens=reply.input_tokens, output_tokens=reply.output_tokens, cost_usd=reply.cost_usd,
        )  # fmt: skip
    assert value("hive_mcp_calls_in_flight", tool="complete") == in_flight
    assert value("hive_mcp_calls_total", **ok) == calls + 1
    assert value("hive_mcp_overhead_seconds_count", tool="complete") == overheads + 1
    told = meta[OVERHEAD_META_KEY]
    assert 0 <= told < watch.duration_s * 1000 - 200  # the upstream's 0.2 s is not hive-mcp's own time
    assert value("hive_mcp_tokens_total", group=MODEL, caller="local", type="input") >= reply.input_tokens


async def test_a_call_that_never_finished_is_counted_as_cancelled():
    cancelled = dict(tool="stream_complete", group="none", deployment="none", outcome="cancelled",
                     error_category="none")  # fmt: skip
    before = value("hive_mcp_calls_total", **cancelled)
    with anyio.move_on_after(0.01):
        with CallWatch("stream_complete", caller="local"):
            await anyio.sleep(5)
    assert value("hive_mcp_calls_total", **cancelled) == before + 1
    assert value("hive_mcp_calls_in_flight", tool="stream_complete") == 0


def test_a_call_that_raised_is_counted_as_an_error():
    failed = dict(tool="complete", group="none", deployment="none", outcome="error", error_category="internal")
    before = value("hive_mcp_calls_total", **failed)
    with pytest.raises(RuntimeError), CallWatch("complete", caller="local"):
        raise RuntimeError("a bug")
    assert value("hive_mcp_calls_total", **failed) == before + 1


async def test_every_completion_tool_call_is_watched_and_tells_its_overhead(provider, upstream, store, named):
    """Through the MCP tools: an answered call is counted `ok` and its result's `_meta` tells its overhead; a call
    its admission refuses is counted `refused` by the field that refused it, with no overhead to tell."""
    ok = dict(tool="complete", group=MODEL, deployment=MODEL, outcome="ok", error_category="none")
    refused = dict(tool="stream_complete", group="none", deployment="none", outcome="refused",
                   error_category="max_tokens")  # fmt: skip
    before_ok, before_refused = value("hive_mcp_calls_total", **ok), value("hive_mcp_calls_total", **refused)
    upstream.script(Reply.text("Paris", model=MODEL.removeprefix("openai/")))
    server = mcp_server(provider, store, limits=Limits(max_tokens=10))
    async with connect(server, "legacy") as c:
        answered = await c.call_tool("complete", {"prompt": "hi"})
        refusal = await c.call_tool("stream_complete", {"prompt": "hi", "max_tokens": 11})
    assert not answered.is_error and answered.meta is not None and answered.meta[OVERHEAD_META_KEY] >= 0
    assert refusal.is_error and OVERHEAD_META_KEY not in (refusal.meta or {})
    assert value("hive_mcp_calls_total", **ok) == before_ok + 1
    assert value("hive_mcp_calls_total", **refused) == before_refused + 1


async def test_a_settled_call_shows_in_its_budgets_gauges(provider, upstream, store, tmp_path):
    """The budget gauges follow the ledger: once a metered call is settled, its budget's spend is on them."""
    budgets = Budgets.from_settings(day=5.0, month=None, section={}, names={"caller": ["local"], "model": [MODEL]})
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    upstream.script(Reply.text("Paris", usage={"prompt_tokens": 1000, "completion_tokens": 1000}))
    async with connect(mcp_server(provider, store, spend=spend), "legacy") as c:
        assert not (await c.call_tool("complete", {"prompt": "hi"})).is_error
    # The gauges are process-wide and `all:day` is every test's: this server's budget is the one with a 5.0 limit.
    await until(
        lambda: value("hive_mcp_budget_limit_usd", budget="all:day") == 5.0
        and value("hive_mcp_budget_spent_usd", budget="all:day") > 0,
        "the budget gauges show this server's budget and its spend",
    )


async def test_the_tasks_this_instance_runs_are_a_gauge(tmp_path):
    engine = TaskEngine(SQLiteTaskStore(tmp_path / "tasks.sqlite3"))
    release = anyio.Event()

    async def job() -> CallToolResult:
        await release.wait()
        return CallToolResult(content=[])

    task = await engine.start("local", "complete", job)
    assert value("hive_mcp_tasks_open") == 1
    release.set()
    await engine.wait("local", task.task_id)
    await until(lambda: value("hive_mcp_tasks_open") == 0, "the ended task left the gauge")
    await engine.aclose()


async def test_the_conversations_kept_are_a_gauge(provider, upstream, store, tmp_path):
    upstream.script(Reply.text("one"), Reply.text("two"))
    conversations = SQLiteStore(tmp_path / "conversations.sqlite3")
    async with connect(mcp_server(provider, store, conversations=conversations), "legacy") as c:
        for _ in range(2):
            assert not (await c.call_tool("complete", {"prompt": "hi"})).is_error
        assert await conversations.count() == 2
    # The server counts them when it starts and every GAUGE_INTERVAL_S: a new server's first count is 2.
    async with connect(mcp_server(provider, store, conversations=conversations), "legacy"):
        await until(lambda: value("hive_mcp_conversations_open") == 2, "the conversations counted")
