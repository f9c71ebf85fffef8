"""Failed requests as the MCP layer shows them, end to end in-process: the `list_failed_requests` tool, the
resources (each dump, the index, the listing's pages at any count, and the one not-found for a URI no resource
answers, read or subscribed to) and the notifications that say the list or the index changed. The SDK's real
Client, both protocol eras; the failures come from the real LiteLLMProvider against the scripted upstream, or
are dumps written to the store directly.

Races are settled by waiting on notifications, never by sleeping.
"""

from __future__ import annotations

import base64
import json
import shutil
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

from hive_mcp.dumps import DumpStore, make_dump_id
from hive_mcp.dashboard.app import RESOURCE_URI as DASHBOARD_URI
from hive_mcp.mcp import INDEX_URI, MODELS_URI, dump_uri
from tests.clients import DUMPS_FROM, MODEL, WAIT, connect, make_dump, Notifications, text_of
from tests.conftest import TEST_KEY
from harness.upstream import Reply, Upstream


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


def _cursor_for(dump_id: str) -> str:
    return base64.urlsafe_b64encode(dump_id.encode()).decode().rstrip("=")


async def test_a_list_cursor_the_server_did_not_make_is_invalid_params_and_one_for_a_pruned_dump_pages_on(
    make_server: Callable[..., MCPServer], store: DumpStore, mode: str
) -> None:
    """Pagination: "Invalid cursors SHOULD result in an error with code -32602". The templates are never
    paged, so any cursor there is invalid; a dump listing's cursor must stand for a well-formed dump id, as
    `encode_cursor` writes it: not with a changed character in its padding bits (another spelling of an id),
    nor a timestamp that is no time. A well-formed cursor whose dump is gone (deleted, pruned) pages on from
    where it stood: the listing is keyset-paged on ids, and a boundary dump may go between two pages."""
    written = [store.write(make_dump(i)) for i in range(5)]
    tidy = make_dump_id(DUMPS_FROM, "rate_limit", "m", "0123abcd")  # 44 characters: 2 padding bits
    spelled = _cursor_for(tidy)
    padded = spelled[:-1] + _B64[_B64.index(spelled[-1]) | 1]
    no_time = _cursor_for("20261399T000000000000Z" + tidy[22:])
    bad = ["garbage", padded, no_time]
    async with connect(make_server(resource_page_size=2), mode) as c:
        first = await c.list_resources()
        assert first.next_cursor == _cursor_for(written[3])  # the page ends at dump 3
        errors = []
        for cursor in [*bad, first.next_cursor]:  # a cursor from another listing is none of the templates'
            with pytest.raises(MCPError) as info:
                await c.list_resource_templates(cursor=cursor, cache_mode="bypass")
            errors.append(info.value.error)
        for cursor in bad:
            with pytest.raises(MCPError) as info:
                await c.list_resources(cursor=cursor, cache_mode="bypass")
            errors.append(info.value.error)
            listed = await c.call_tool("list_failed_requests", {"cursor": cursor})
            assert listed.is_error and text_of(listed) == (
                "invalid arguments: cursor: not a cursor from this listing; pass next_cursor back unchanged"
            )
        assert store.delete(written[3])
        after_gone = await c.list_resources(cursor=first.next_cursor, cache_mode="bypass")
    assert [(e.code, "\n" in e.message) for e in errors] == [(types.INVALID_PARAMS, False)] * 7
    assert [r.uri for r in after_gone.resources] == [dump_uri(written[2]), dump_uri(written[1])]
    assert after_gone.next_cursor == _cursor_for(written[1])


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


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
