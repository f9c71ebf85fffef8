"""The MCP layer, end to end in-process: the SDK's real Client, both protocol eras,
the real LiteLLMProvider against the scripted upstream. litellm is never mocked.

Races are settled by waiting on events (progress callbacks set anyio.Events; the
upstream's threading.Events are waited on from a worker thread), never by sleeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore, make_dump_id
from hive_mcp.dashboard.app import RESOURCE_URI as DASHBOARD_URI
from hive_mcp.mcp import INDEX_URI, MODELS_URI, dump_uri
from tests.clients import DUMPS_FROM, MODEL, WAIT, connect, make_dump, mcp_server, Notifications, Progress
from tests.clients import text_of, wait_thread_event
from tests.conftest import TEST_KEY
from harness.processes import ROOT, child_env
from harness.upstream import Reply, Upstream, tool_call_delta

@pytest.fixture
def make_server(provider: Any, store: DumpStore) -> Callable[..., MCPServer]:
    def make(**kwargs: Any) -> MCPServer:
        return mcp_server(provider, store, **kwargs)

    return make


# ---------------------------------------------------------------------------
# The layer's boundary
# ---------------------------------------------------------------------------


def test_the_mcp_layer_never_imports_litellm() -> None:
    # A fresh interpreter: this one has litellm loaded already (the provider fixture).
    probe = "import sys, hive_mcp.mcp; print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


# ---------------------------------------------------------------------------
# Tool listing
# ---------------------------------------------------------------------------


async def test_tools_have_schemas_and_annotations(make_server: Callable[..., MCPServer], mode: str) -> None:
    async with connect(make_server(), mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == {"complete", "stream_complete", "list_failed_requests", "list_models", "dashboard"}
    for name in ("complete", "stream_complete"):
        t = tools[name]
        # Unset hints mean the spec's defaults: open world, not read-only; destructive only when said.
        assert t.annotations is not None and t.annotations.open_world_hint in (None, True)
        assert t.annotations.read_only_hint in (None, False) and t.annotations.destructive_hint is False
        assert {"prompt", "messages", "system", "model", "max_tokens", "temperature", "tools", "deadline_s"} <= set(
            t.input_schema["properties"]
        )
        assert t.output_schema is not None
        assert {"content", "model", "stop_reason", "tool_calls"} <= set(t.output_schema["properties"])
        assert not {"attempts", "dump_id", "cost_usd"} & set(t.output_schema["properties"])  # those are in _meta
    listing = tools["list_failed_requests"]
    assert listing.annotations is not None and listing.annotations.read_only_hint is True
    assert listing.output_schema is not None and "next_cursor" in listing.output_schema["properties"]
    models = tools["list_models"]
    assert models.annotations is not None and models.annotations.read_only_hint is True
    assert models.output_schema is not None and "groups" in models.output_schema["properties"]


# ---------------------------------------------------------------------------
# complete
# ---------------------------------------------------------------------------


async def test_complete_returns_structured_content_and_text(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.text("Paris is the capital.", usage={"prompt_tokens": 12, "completion_tokens": 5}))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool(
            "complete",
            {"prompt": "Capital of France?", "system": "Be brief.", "temperature": 0.3, "max_tokens": 50},
        )
    assert not r.is_error
    assert text_of(r) == "Paris is the capital."
    s = r.structured_content
    assert s is not None
    assert s["content"] == "Paris is the capital."
    assert s["model"] == "gpt-4o-mini"
    assert s["stop_reason"] == "stop"
    facts = call_facts(r)
    assert (facts["input_tokens"], facts["output_tokens"], facts["attempts"]) == (12, 5, 1)
    assert s["tool_calls"] == [] and "dump_id" not in facts
    [req] = upstream.chat_requests()
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["temperature"] == 0.3 and req.body["max_tokens"] == 50
    assert req.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]


async def test_complete_model_override_and_json_looking_prompt_stays_text(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    prompt = '{"task": "echo", "items": [1, 2]}'
    upstream.script(Reply.text("ok"))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("complete", {"prompt": prompt, "model": "openai/other-model"})
    assert not r.is_error, text_of(r)
    [req] = upstream.chat_requests()
    assert req.body["model"] == "other-model"
    assert req.messages == [{"role": "user", "content": prompt}]


async def test_complete_tool_calls_pass_through(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    weather = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    upstream.script(
        Reply.text(None, tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]),
        Reply.text("It is sunny."),
    )
    async with connect(make_server(), mode) as c:
        first = await c.call_tool("complete", {"prompt": "Weather in Paris?", "tools": [weather]})
        assert not first.is_error, text_of(first)
        assert first.structured_content is not None
        assert first.structured_content["tool_calls"] == [
            {"id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
        ]
        assert first.structured_content["stop_reason"] == "tool_calls"
        history = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
        ]
        second = await c.call_tool("complete", {"messages": history, "tools": [weather]})
    assert not second.is_error, text_of(second)
    assert text_of(second) == "It is sunny."
    req1, req2 = upstream.chat_requests()
    assert req1.body["tools"] == [{"type": "function", "function": weather}]
    assert req2.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert req2.messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}


async def test_upstream_401_is_one_clean_line(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str
) -> None:
    # OpenAI echoes (part of) a bad key in its message; none of it may reach the client.
    upstream.script(
        Reply.error(401, f"Incorrect API key provided: {TEST_KEY}", code="invalid_api_key", err_type="invalid_request_error")
    )
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("complete", {"prompt": "hi"})
    assert r.is_error
    text = text_of(r)
    [summary] = store.list().items
    assert "\n" not in text
    assert "auth" in text and MODEL in text and "1 attempt" in text
    assert dump_uri(summary.id) in text
    assert "Traceback" not in text and '"error"' not in text
    assert TEST_KEY not in r.model_dump_json()
    assert len(upstream.chat_requests()) == 1


# ---------------------------------------------------------------------------
# stream_complete
# ---------------------------------------------------------------------------


async def test_stream_progress_is_incremental_and_concatenates(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["Hel", "lo, ", "wor", "ld"], hold_after=1))
    progress = Progress()
    async with connect(make_server(), mode) as c, anyio.create_task_group() as tg:
        results: list[types.CallToolResult] = []

        async def call() -> None:
            results.append(await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress))

        tg.start_soon(call)
        # The upstream holds after its first chunk until released: text arriving now
        # proves progress is sent while the upstream is still streaming.
        await progress.wait_for(lambda items: any(m for _, m in items))
        assert not results
        assert progress.text == "Hel"
        upstream.release()
    [r] = results
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert r.structured_content["content"] == "Hello, world" == text_of(r)
    assert progress.text == "Hello, world"
    values = [p for p, _ in progress.items]
    assert all(a < b for a, b in zip(values, values[1:])), values


async def test_fast_text_is_gathered_into_fewer_notifications_whole_and_in_order(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    chunks = [f"w{i} " for i in range(400)]
    upstream.script(Reply.stream(chunks))
    progress = Progress()
    interval = 0.05
    async with connect(make_server(progress_interval_s=interval), mode) as c:
        started = anyio.current_time()
        r = await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress)
        elapsed = anyio.current_time() - started
    assert not r.is_error, text_of(r)
    assert progress.text == "".join(chunks) == text_of(r)
    with_text = [m for _, m in progress.items if m]
    # At most one notification with text per interval (plus the first): 400 chunks, not 400 notifications.
    assert len(with_text) <= elapsed / interval + 2, (len(with_text), elapsed)


async def test_stream_heartbeat_while_upstream_silent(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["a", "b"], hold_after=1))
    progress = Progress()
    async with connect(make_server(heartbeat_s=0.05), mode) as c, anyio.create_task_group() as tg:
        tg.start_soon(lambda: c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress))
        await progress.wait_for(lambda items: any(m == "a" for _, m in items))
        seen = len(progress.items)
        # Upstream is now silent (held); a message-less notification must still come.
        await progress.wait_for(lambda items: any(m is None for _, m in items[seen:]))
        upstream.release()
    values = [p for p, _ in progress.items]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert progress.text == "ab"


async def test_complete_sends_heartbeats_while_the_model_is_silent(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    # A slow model on `complete`: a client that resets its timeout on progress must hear something.
    upstream.script(Reply.hang())
    progress = Progress()
    async with connect(make_server(heartbeat_s=0.02), mode) as c, anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def call() -> None:
            with scope:
                await c.call_tool("complete", {"prompt": "think hard"}, progress_callback=progress)
                pytest.fail("the upstream never answered: the call cannot have returned")

        tg.start_soon(call)
        await progress.wait_for(lambda items: len(items) >= 3)
        assert len(upstream.chat_requests()) == 1  # waiting on the model, not in a queue
        scope.cancel()
    assert progress.heartbeats == len(progress.items) >= 3  # heartbeats carry no message
    assert progress.increasing(), progress.items
    assert await wait_thread_event(upstream.client_gone), "the cancelled call left its upstream request open"


async def test_stream_without_progress_token_still_returns(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["one ", "two"]))
    async with connect(make_server(heartbeat_s=0.01), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "count"})
    assert not r.is_error, text_of(r)
    assert text_of(r) == "one two"


async def test_stream_tool_calls_pass_through(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(
        Reply.stream(
            [
                tool_call_delta(0, id="call_9", name="lookup", args='{"q": '),
                tool_call_delta(0, args='"mcp"}'),
            ],
            finish_reason="tool_calls",
        )
    )
    tool = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "search", "tools": [tool]})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert r.structured_content["tool_calls"] == [{"id": "call_9", "name": "lookup", "input": {"q": "mcp"}}]
    assert upstream.chat_requests()[0].body["tools"][0]["function"]["name"] == "lookup"


async def test_stream_upstream_failure_is_one_clean_line(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.error(401, f"Incorrect API key provided: {TEST_KEY}"))
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=Progress())
    assert r.is_error
    text = text_of(r)
    [summary] = store.list().items
    assert "\n" not in text and "auth" in text and MODEL in text and "1 attempt" in text
    assert dump_uri(summary.id) in text
    assert TEST_KEY not in r.model_dump_json()


async def test_cancel_closes_upstream_and_server_keeps_serving(
    make_server: Callable[..., MCPServer], upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.stream(["first", "never"], hold_after=1), Reply.text("still here"))
    progress = Progress()
    async with connect(make_server(), mode) as c:
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await c.call_tool("stream_complete", {"prompt": "hi"}, progress_callback=progress)

            tg.start_soon(call)
            await progress.wait_for(lambda items: any(m for _, m in items))
            assert not upstream.client_gone.is_set()
            scope.cancel()
        assert await wait_thread_event(upstream.client_gone), "upstream connection still open after the cancel"
        r = await c.call_tool("complete", {"prompt": "again"})
    assert not r.is_error, text_of(r)
    assert text_of(r) == "still here"


# ---------------------------------------------------------------------------
# Failed requests: tool, resources, notifications
# ---------------------------------------------------------------------------


async def test_failed_call_dump_is_listed_and_readable(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.error(401))
    async with connect(make_server(), mode) as c:
        failed = await c.call_tool("complete", {"prompt": "remember me"})
        assert failed.is_error
        assert store.count() == 1

        listed = await c.call_tool("list_failed_requests", {})
        assert not listed.is_error, text_of(listed)
        assert listed.structured_content is not None
        [item] = listed.structured_content["items"]
        assert item["uri"] == dump_uri(item["id"]) and item["uri"] in text_of(failed)
        assert (item["model"], item["error_type"], item["attempt_count"], item["message_count"]) == (MODEL, "auth", 1, 1)
        assert item["size_bytes"] > 0 and listed.structured_content["next_cursor"] is None

        resources = await c.list_resources()
        uris = [r.uri for r in resources.resources]
        assert uris == [MODELS_URI, INDEX_URI, DASHBOARD_URI, item["uri"]]

        read = await c.read_resource(item["uri"])
        [content] = read.contents
        assert isinstance(content, types.TextResourceContents)
        assert content.mime_type == "application/json"
        dump = json.loads(content.text)
        assert dump["id"] == item["id"] and dump["error_type"] == "auth"
        assert dump["messages"] == [{"role": "user", "content": "remember me"}]
        assert TEST_KEY not in content.text

        index = await c.read_resource(INDEX_URI)
        [index_content] = index.contents
        assert isinstance(index_content, types.TextResourceContents)
        assert json.loads(index_content.text) == listed.structured_content


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("hive://no-such-thing", id="unknown-under-hive"),
        pytest.param("hive://modelsX", id="a-fixed-uri-extended"),
        pytest.param("hive://failed-requestsX/abc", id="a-template-prefix-extended"),
        pytest.param("ui://hive/other", id="unknown-under-ui"),
        pytest.param("not a uri", id="malformed-no-scheme"),
        pytest.param("hive:/", id="malformed-no-authority"),
        pytest.param("::\x00%zz", id="malformed-bytes"),
    ],
)
async def test_an_unknown_or_malformed_uri_answers_the_same_one_line_not_found(
    make_server: Callable[..., MCPServer], mode: str, uri: str
) -> None:
    expected = -32002 if mode == "legacy" else types.INVALID_PARAMS  # resource-not-found of each era
    async with connect(make_server(), mode) as c:
        with pytest.raises(MCPError) as info:
            await c.read_resource(uri, cache_mode="bypass")
    assert info.value.error.code == expected
    assert info.value.error.message == f"Resource not found: uri {uri!r}: unknown resource"


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the legacy era's subscribe, on purpose
@pytest.mark.parametrize("uri", ["hive://no-such-thing", "hive://conversations/conv_" + "A" * 22, "not a uri"])
async def test_subscribing_to_a_uri_no_resource_answers_is_the_reads_not_found(
    make_server: Callable[..., MCPServer], uri: str
) -> None:
    """One table answers reads and subscriptions alike (conversations are off here): what cannot be read
    cannot be heard of."""
    async with connect(make_server(), "legacy") as c:
        with pytest.raises(MCPError) as info:
            await c.session.subscribe_resource(uri)
        await c.session.subscribe_resource(MODELS_URI)  # a resource of this server still can be
    assert info.value.error.code == -32002
    assert info.value.error.message == f"Resource not found: uri {uri!r}: unknown resource"


async def test_resources_list_pages_with_cursors(
    make_server: Callable[..., MCPServer], store: DumpStore, mode: str
) -> None:
    written = [store.write(make_dump(i)) for i in range(5)]
    async with connect(make_server(resource_page_size=2), mode) as c:
        pages: list[list[str]] = []
        cursor: str | None = None
        for _ in range(5):  # bounded: a cursor that never advances must fail, not hang
            page = await c.list_resources(cursor=cursor)
            pages.append([r.uri for r in page.resources])
            assert len(page.resources) <= 5  # the fixed three lead the first page
            cursor = page.next_cursor
            if cursor is None:
                break
        assert cursor is None, "pagination did not end"
        with pytest.raises(MCPError) as info:
            await c.list_resources(cursor="not a cursor!")
    assert info.value.error.code == types.INVALID_PARAMS
    assert pages[0][:3] == [MODELS_URI, INDEX_URI, DASHBOARD_URI]
    dumps = [u for page in pages for u in page if u not in (MODELS_URI, INDEX_URI, DASHBOARD_URI)]
    assert dumps == [dump_uri(i) for i in reversed(written)]  # newest first, each once
    assert [len(p) for p in pages] == [5, 2, 1]


class OpenedFiles:
    """The names of files opened under `root` while in the block, seen through the interpreter's
    `open` audit event (PEP 578), so the count includes opens from worker threads."""

    _active: list[OpenedFiles] = []
    _hooked = False

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.names: set[str] = set()

    @classmethod
    def _audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and cls._active and isinstance(args[0], (str, Path)):
            path = str(args[0])
            for watcher in cls._active:
                if path.startswith(watcher.root):
                    watcher.names.add(Path(path).name)

    def __enter__(self) -> OpenedFiles:
        if not OpenedFiles._hooked:  # audit hooks cannot be removed: one, idle when no block is active
            sys.addaudithook(OpenedFiles._audit)
            OpenedFiles._hooked = True
        OpenedFiles._active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        OpenedFiles._active.remove(self)


async def test_resources_list_stays_small_at_10000_dumps(
    make_server: Callable[..., MCPServer], store: DumpStore, dump_dir: Any
) -> None:
    # Copy one real dump file under 10,000 names: far faster than 10,000 fsynced writes.
    source = dump_dir / f"{store.write(make_dump(0))}.json"
    base = DUMPS_FROM + timedelta(days=1)
    for i in range(1, 10_000):
        dump_id = make_dump_id(base + timedelta(seconds=i), "rate_limit", MODEL)
        shutil.copyfile(source, dump_dir / f"{dump_id}.json")
    assert store.count() == 10_000
    async with connect(make_server(), "legacy") as c:
        with OpenedFiles(dump_dir) as opened:
            page = await c.list_resources()
        second = await c.list_resources(cursor=page.next_cursor)
    assert page.next_cursor is not None and len(page.resources) == 53  # the catalogue, the index, the dashboard + one page
    assert not {r.uri for r in page.resources} & {r.uri for r in second.resources}
    # What keeps a page cheap at any count: only the page's own files are opened.
    on_page = {f"{r.name}.json" for r in page.resources if r.uri not in (MODELS_URI, INDEX_URI, DASHBOARD_URI)}
    assert opened.names and opened.names <= on_page, sorted(opened.names - on_page)[:5]


async def test_list_failed_requests_filters_and_pages(
    make_server: Callable[..., MCPServer], store: DumpStore, mode: str
) -> None:
    for i in range(3):
        store.write(make_dump(i, error_type="rate_limit"))
    store.write(make_dump(10, error_type="auth", model="anthropic/claude-test"))
    async with connect(make_server(), mode) as c:
        auth = await c.call_tool("list_failed_requests", {"error_type": "auth"})
        by_model = await c.call_tool("list_failed_requests", {"model": "anthropic/claude-test"})
        recent = await c.call_tool("list_failed_requests", {"since": (DUMPS_FROM + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")})
        first = await c.call_tool("list_failed_requests", {"limit": 2})
        assert first.structured_content is not None
        rest = await c.call_tool("list_failed_requests", {"limit": 2, "cursor": first.structured_content["next_cursor"]})
    assert auth.structured_content is not None and by_model.structured_content is not None
    assert [i["error_type"] for i in auth.structured_content["items"]] == ["auth"]
    assert [i["model"] for i in by_model.structured_content["items"]] == ["anthropic/claude-test"]
    assert recent.structured_content is not None and len(recent.structured_content["items"]) == 3
    assert rest.structured_content is not None
    ids = [i["id"] for i in first.structured_content["items"] + rest.structured_content["items"]]
    assert len(ids) == len(set(ids)) == 4
    assert ids == sorted(ids, reverse=True)
    assert rest.structured_content["next_cursor"] is None


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_legacy_sessions_hear_list_changed_and_index_updates(
    make_server: Callable[..., MCPServer], upstream: Upstream, store: DumpStore
) -> None:
    server = make_server()
    subscriber, bystander = Notifications(), Notifications()
    upstream.script(Reply.error(401))
    async with (
        connect(server, "legacy", message_handler=subscriber) as a,
        connect(server, "legacy", message_handler=bystander) as b,
    ):
        caps = a.server_capabilities.resources
        assert caps is not None and caps.list_changed and caps.subscribe
        await a.session.subscribe_resource(INDEX_URI)
        await b.list_tools()  # any request makes a legacy session known
        assert (await a.call_tool("complete", {"prompt": "hi"})).is_error  # writes a dump

        await subscriber.wait_for(types.ResourceListChangedNotification, 1)
        await subscriber.wait_for(types.ResourceUpdatedNotification, 1)
        updated = [m for m in subscriber.seen if isinstance(m, types.ResourceUpdatedNotification)]
        assert updated[0].params.uri == INDEX_URI
        await bystander.wait_for(types.ResourceListChangedNotification, 1)

        # A write from a thread that is no part of the event loop (e.g. a prune by another tool).
        writer = threading.Thread(target=store.write, args=(make_dump(1),))
        writer.start()
        await anyio.to_thread.run_sync(writer.join)
        await subscriber.wait_for(types.ResourceListChangedNotification, 2)
        await bystander.wait_for(types.ResourceListChangedNotification, 2)
    # Only subscribers of the index hear that it was updated.
    assert bystander.count(types.ResourceUpdatedNotification) == 0


async def test_listen_stream_hears_dump_changes(
    make_server: Callable[..., MCPServer], upstream: Upstream
) -> None:
    upstream.script(Reply.error(401))
    async with connect(make_server(), "auto") as c:
        caps = c.server_capabilities.resources
        assert caps is not None and caps.list_changed
        async with c.listen(resources_list_changed=True, resource_subscriptions=[INDEX_URI]) as sub:
            assert (await c.call_tool("complete", {"prompt": "hi"})).is_error
            events = []
            with anyio.fail_after(WAIT):
                async for event in sub:
                    events.append(type(event).__name__)
                    if {"ResourcesListChanged", "ResourceUpdated"} <= set(events):
                        break
