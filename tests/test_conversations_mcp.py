"""Conversations over MCP: the SDK's real Client, in both protocol eras, against the scripted upstream.

Every test runs on both store backends (SQLite on a real file, Redis on a real
valkey-server) and asserts the exact message list the upstream received.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.calls import Conversations
from hive_mcp.mcp.results import call_facts
from hive_mcp.conversations import ConversationLimits, ConversationStore, NewTurn
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.dumps import DumpStore
from hive_mcp.limits import Limits

from hive_mcp.provider import LiteLLMProvider
from tests.clients import MODEL, connect, hear, mcp_server, text_of, until
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.conftest_valkey import Backend, reads_expired, wait_for
from harness.upstream import Reply, Upstream

SYSTEM = {"role": "system", "content": "Answer briefly."}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


@pytest.fixture
def conv(backend: Backend) -> ConversationStore:
    return backend.make()


@pytest.fixture
def server(provider: LiteLLMProvider, store: DumpStore, conv: ConversationStore) -> MCPServer:
    return mcp_server(provider, store, conversations=conv)


async def call(client: Any, tool: str = "complete", **arguments: Any) -> types.CallToolResult:
    return await client.call_tool(tool, arguments)


def sent(upstream: Upstream, n: int = -1) -> list[dict[str, Any]]:
    """The messages of the n-th chat request the upstream received."""
    return upstream.chat_requests()[n].messages


# ---------------------------------------------------------------------------
# Continue, switch model, tool calls
# ---------------------------------------------------------------------------


async def test_continue_sends_the_thread_then_the_new_prompt(
    server: MCPServer, upstream: Upstream, conv: ConversationStore, mode: str
) -> None:
    upstream.script(Reply.text("Paris."), Reply.stream(["About 2 ", "million."]))
    async with connect(server, mode) as c:
        first = await call(c, prompt="Capital of France?", system=SYSTEM["content"])
        cid = first.structured_content["conversation_id"]
        second = await call(c, prompt="Its population?", conversation_id=cid, tool="stream_complete")
    assert not second.is_error, text_of(second)
    assert second.structured_content["conversation_id"] == cid and call_facts(second)["omitted_turns"] == 0
    assert sent(upstream, 0) == [SYSTEM, user("Capital of France?")]
    assert sent(upstream, 1) == [SYSTEM, user("Capital of France?"), assistant("Paris."), user("Its population?")]
    view = await conv.get(cid)
    assert view.chat_messages() == [*sent(upstream, 1), assistant("About 2 million.")]
    assert [t.usage.input_tokens for t in view.turns] == [11, 11] and view.thread.turns == 2


async def test_a_continued_call_may_name_another_model(server: MCPServer, upstream: Upstream, conv: ConversationStore) -> None:
    upstream.script(Reply.text("A says 4."), Reply.text("B agrees.", model="gpt-4.1-mini"))
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="2+2?")).structured_content["conversation_id"]
        second = await call(c, prompt="Do you agree?", conversation_id=cid, model="openai/gpt-4.1-mini")
    assert upstream.chat_requests()[1].body["model"] == "gpt-4.1-mini"
    assert sent(upstream, 1) == [user("2+2?"), assistant("A says 4."), user("Do you agree?")]
    assert second.structured_content["model"] == "gpt-4.1-mini"
    view = await conv.get(cid)
    assert [t.model for t in view.turns] == [MODEL, "openai/gpt-4.1-mini"]  # as the call named it, as `usage` does


async def test_system_on_a_continued_call_replaces_the_threads_for_that_call_only(
    server: MCPServer, upstream: Upstream
) -> None:
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="hi", system="Be terse.")).structured_content["conversation_id"]
        await call(c, prompt="again", conversation_id=cid, system="Be verbose.")
        await call(c, prompt="third", conversation_id=cid)
    hello = [user("hi"), assistant("default reply")]
    assert sent(upstream, 1) == [{"role": "system", "content": "Be verbose."}, *hello, user("again")]
    assert sent(upstream, 2)[0] == {"role": "system", "content": "Be terse."}
    assert sent(upstream, 2)[1:] == [*hello, user("again"), assistant("default reply"), user("third")]


async def test_tool_calls_and_tool_results_are_replayed_structured(server: MCPServer, upstream: Upstream) -> None:
    upstream.script(Reply.text(None, tool_calls=[{"id": "call_7", "name": "weather", "arguments": '{"city": "Oslo"}'}]))
    tools = [{"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    async with connect(server, "legacy") as c:
        first = await call(c, prompt="Weather in Oslo?", tools=tools)
        cid = first.structured_content["conversation_id"]
        result = {"role": "tool", "tool_call_id": "call_7", "content": '{"c": -3}'}
        await call(c, messages=[result], conversation_id=cid, tools=tools)
    asked = sent(upstream, 1)
    assert asked[0] == user("Weather in Oslo?")
    assert asked[1]["role"] == "assistant" and asked[1].get("content") in (None, "")
    assert asked[1]["tool_calls"] == [
        {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    ]
    assert asked[2] == result and len(asked) == 3


# ---------------------------------------------------------------------------
# Fork
# ---------------------------------------------------------------------------


async def test_forks_run_in_parallel_and_leave_the_source_unchanged(
    server: MCPServer, upstream: Upstream, conv: ConversationStore, mode: str
) -> None:
    upstream.script(Reply.text("Draft."))
    async with connect(server, mode) as c:
        cid = (await call(c, prompt="Write a haiku.")).structured_content["conversation_id"]
        results: dict[str, types.CallToolResult] = {}

        async def fork(model: str) -> None:
            results[model] = await call(c, prompt="Improve it.", conversation_id=cid, fork=True, model=model)

        async with anyio.create_task_group() as tg:
            for model in ("openai/m1", "openai/m2", "openai/m3"):
                tg.start_soon(fork, model)
    ids = {r.structured_content["conversation_id"] for r in results.values()}
    assert len(ids) == 3 and cid not in ids
    expected = [user("Write a haiku."), assistant("Draft."), user("Improve it.")]
    assert sorted(r.body["model"] for r in upstream.chat_requests()[1:]) == ["m1", "m2", "m3"]
    assert all(r.messages == expected for r in upstream.chat_requests()[1:])
    assert (await conv.get(cid)).thread.turns == 1  # the source is as it was
    for fork_id in ids:
        view = await conv.get(fork_id)
        assert view.chat_messages() == [*expected, assistant("default reply")]
        assert view.thread.forked_from_thread == cid


# ---------------------------------------------------------------------------
# Failures and bad ids
# ---------------------------------------------------------------------------


async def test_a_failed_call_leaves_the_thread_and_its_dump_names_the_conversation(
    server: MCPServer, upstream: Upstream, conv: ConversationStore, store: DumpStore
) -> None:
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        before = await conv.get(cid)
        upstream.script(Reply.error(400, "bad request"))
        failed = await call(c, prompt="and?", conversation_id=cid)
    assert failed.is_error and "conversation_id" not in (failed.structured_content or {})
    after = await conv.get(cid)
    assert after.messages == before.messages and after.thread.tip == before.thread.tip
    dumps = store.list(limit=5).items
    assert len(dumps) == 1
    assert json.loads(store.read_text(dumps[0].id))["conversation_id"] == cid


async def test_a_recovered_calls_dump_names_the_conversation_its_result_returned(
    server: MCPServer, upstream: Upstream, store: DumpStore
) -> None:
    upstream.script(Reply.error(503), Reply.text("first"), Reply.error(503), Reply.text("forked"))
    async with connect(server, "auto") as c:
        first = await call(c, prompt="hi")
        started, started_facts = first.structured_content, call_facts(first)
        second = await call(c, prompt="and?", conversation_id=started["conversation_id"], fork=True)
        forked, forked_facts = second.structured_content, call_facts(second)
    for result, facts in ((started, started_facts), (forked, forked_facts)):
        dump = store.read(facts["dump_id"])
        assert dump.outcome == "recovered" and facts["attempts"] == 2
        assert dump.conversation_id == result["conversation_id"] is not None
    assert forked["conversation_id"] != started["conversation_id"]


async def test_a_recovered_call_that_loses_the_race_and_forks_has_a_dump_naming_the_fork(
    server: MCPServer, upstream: Upstream, conv: ConversationStore, store: DumpStore
) -> None:
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        upstream.script(Reply.error(503), Reply.stream(["lat", "e"], hold_after=1))
        async with anyio.create_task_group() as tg:
            results: list[types.CallToolResult] = []

            async def go() -> None:
                results.append(await call(c, "stream_complete", prompt="and?", conversation_id=cid))

            tg.start_soon(go)
            await until(lambda: len(upstream.chat_requests()) == 3, "the retry reached the upstream")
            # Another process appends meanwhile, so this call's append loses the compare-and-swap.
            tip = (await conv.thread(cid)).tip
            await conv.append(cid, [user("elsewhere")], NewTurn(model="m"), expected_tip=tip, owner="local")
            upstream.release()
    result, facts = results[0].structured_content, call_facts(results[0])
    assert facts["attempts"] == 2 and result["conversation_id"] not in (None, cid)
    assert (await conv.get(result["conversation_id"])).thread.forked_from_thread == cid
    dump = store.read(facts["dump_id"])
    assert dump.outcome == "recovered" and dump.conversation_id == result["conversation_id"]
    assert json.loads(store.read_text(facts["dump_id"]))["conversation_id"] == result["conversation_id"]


async def test_unknown_expired_and_malformed_ids_are_refused_before_any_upstream_request(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, backend: Backend, mode: str
) -> None:
    # SQLite: the store's clock moves past the TTL. Redis: its own expiry, on a short real TTL.
    redis = backend.kind == "redis"
    conv = backend.make(limits=ConversationLimits(ttl_s=0.3), real_clock=True) if redis else backend.make()
    server = mcp_server(provider, store, conversations=conv)
    async with connect(server, mode) as c:
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        if redis:
            await wait_for(lambda: reads_expired(conv, cid))
        else:
            backend.clock.advance(4 * 3600)  # past the 3 h TTL
        expired = await call(c, prompt="again", conversation_id=cid)
        unknown = await call(c, prompt="again", conversation_id="conv_" + "A" * 22)
        malformed = await call(c, prompt="again", conversation_id="nope")
    assert len(upstream.chat_requests()) == 1
    assert expired.is_error and text_of(expired) == f"conversation_id: conversation {cid} expired (unused for too long)"
    assert unknown.is_error and text_of(unknown) == f"conversation_id: unknown conversation conv_{'A' * 22}"
    assert malformed.is_error and text_of(malformed) == "conversation_id: malformed id 'nope': not a conversation id"


async def test_fork_without_an_id_is_a_bad_argument(server: MCPServer, upstream: Upstream) -> None:
    async with connect(server, "auto") as c:
        result = await call(c, prompt="hi", fork=True)
    assert result.is_error and "fork" in text_of(result) and "\n" not in text_of(result)
    assert upstream.chat_requests() == []


async def test_two_calls_on_one_conversation_are_served_one_after_the_other(
    server: MCPServer, upstream: Upstream, conv: ConversationStore
) -> None:
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="one")).structured_content["conversation_id"]
        upstream.script(Reply.stream(["tw", "o"], hold_after=1), Reply.text("three"))
        results: list[types.CallToolResult] = []

        async def go(tool: str, prompt: str) -> None:
            results.append(await call(c, tool, prompt=prompt, conversation_id=cid))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go, "stream_complete", "two?")
            await until(lambda: len(upstream.chat_requests()) == 2, "the first call reached the upstream")
            tg.start_soon(go, "complete", "three?")
            locks = server_locks(server)
            await until(lambda: locks.waiting(cid) == 1, "the second call queued behind the first")
            assert len(upstream.chat_requests()) == 2  # the second waits for its turn, it is not sent
            upstream.release()
    assert not any(r.is_error for r in results)
    # The second saw the first's turn: the thread never interleaves.
    assert sent(upstream, 2) == [user("one"), assistant("default reply"), user("two?"), assistant("two"), user("three?")]
    assert (await conv.get(cid)).thread.turns == 3


async def test_a_call_that_waits_past_the_queue_timeout_is_refused_as_busy(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, conv: ConversationStore
) -> None:
    server = mcp_server(provider, store, conversations=conv, limits=Limits(queue_timeout_s=0))
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="one")).structured_content["conversation_id"]
        upstream.script(Reply.stream(["tw", "o"], hold_after=1))
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: call(c, "stream_complete", prompt="two?", conversation_id=cid))
            await until(lambda: len(upstream.chat_requests()) == 2, "the first call reached the upstream")
            busy = await call(c, prompt="three?", conversation_id=cid)
            upstream.release()
    assert busy.is_error and text_of(busy) == (
        f"conversation_id: conversation {cid} is busy with another call; waited 0s for its turn, try again later"
    )
    assert len(upstream.chat_requests()) == 2 and (await conv.get(cid)).thread.turns == 2


def server_locks(server: MCPServer) -> Any:
    """The conversation locks of an in-process server (its call chain's conversation step)."""
    tool = server._tool_manager.get_tool("complete")  # noqa: SLF001 - test introspection
    steps = [getattr(s, "__wrapped__", s) for s in tool.fn.__self__.chain.steps]  # each step inside its span
    (step,) = [s for s in steps if isinstance(s, Conversations)]
    return step.locks


# ---------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------


async def test_the_oldest_turns_are_left_out_to_fit_a_small_window(
    upstream: Upstream, store: DumpStore, conv: ConversationStore
) -> None:
    from hive_mcp.provider.offline import litellm

    litellm.register_model(
        {"openai/tiny-window": {"max_input_tokens": 120, "max_output_tokens": 10, "litellm_provider": "openai",
                                "mode": "chat", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0}}
    )  # fmt: skip
    provider = LiteLLMProvider(
        model="openai/tiny-window", api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    server = mcp_server(provider, store, default_model="openai/tiny-window", conversations=conv)
    words = " ".join(["word"] * 30)
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt=f"one {words}", system="Be brief.", max_tokens=10)).structured_content[
            "conversation_id"
        ]
        for n in ("two", "three"):
            await call(c, prompt=f"{n} {words}", conversation_id=cid, max_tokens=10)
        last = await call(c, prompt="four", conversation_id=cid, max_tokens=10)
    omitted = call_facts(last)["omitted_turns"]
    assert omitted >= 1
    history = (await conv.get(cid)).chat_messages()
    kept = history[1 + 2 * omitted : -2]  # after the system prompt, without the omitted turns and the last call
    assert sent(upstream) == [history[0], *kept, user("four")]
    assert provider.count_tokens(sent(upstream), "openai/tiny-window") <= 120 - 10
    assert (await conv.get(cid)).thread.turns == 4  # left out of the request, not out of the store


# ---------------------------------------------------------------------------
# Conversations off, store failures
# ---------------------------------------------------------------------------


async def test_with_conversations_off_no_id_is_returned(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream
) -> None:
    async with connect(mcp_server(provider, store), "auto") as c:
        result = await call(c, prompt="hi")
        refused = await call(c, prompt="hi", conversation_id="conv_" + "A" * 22)
        names = {t.name for t in (await c.list_tools()).tools}
    assert "conversation_id" not in result.structured_content and "list_conversations" not in names
    assert refused.is_error and "HIVE_MCP_CONVERSATIONS=off" in text_of(refused)
    assert len(upstream.chat_requests()) == 1


async def test_a_failing_store_fails_continued_calls_and_new_calls_go_ahead_without_an_id(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    broken = SQLiteStore(blocker / "hive-mcp.sqlite3")
    server = mcp_server(provider, store, conversations=broken)
    with caplog.at_level(logging.WARNING, logger="hive_mcp"):
        async with connect(server, "auto") as c:
            new = await call(c, prompt="hi")
            continued = await call(c, prompt="again", conversation_id="conv_" + "A" * 22)
    assert not new.is_error and "conversation_id" not in new.structured_content
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "not stored" in r.getMessage()]
    assert len(warnings) == 1 and str(blocker) in warnings[0].getMessage()
    assert continued.is_error and text_of(continued).startswith(f"conversation store {blocker / 'hive-mcp.sqlite3'}")
    assert "\n" not in text_of(continued) and len(upstream.chat_requests()) == 1


async def test_a_full_conversation_is_refused_before_the_upstream(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, backend: Backend
) -> None:
    conv = backend.make(limits=ConversationLimits(max_turns=1))
    server = mcp_server(provider, store, conversations=conv)
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        full = await call(c, prompt="again", conversation_id=cid)
    assert full.is_error and "max_turns 1" in text_of(full)
    assert len(upstream.chat_requests()) == 1


# ---------------------------------------------------------------------------
# Browsing: the tool, the resources, the notifications
# ---------------------------------------------------------------------------


async def test_list_conversations_newest_first_with_filters_and_cursors(
    server: MCPServer, upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.text("a"), Reply.text("b", model="gpt-4.1-mini"), Reply.text("c"))
    async with connect(server, mode) as c:
        ids = [
            (await call(c, prompt="1")).structured_content["conversation_id"],
            (await call(c, prompt="2", model="openai/gpt-4.1-mini")).structured_content["conversation_id"],
            (await call(c, prompt="3")).structured_content["conversation_id"],
        ]
        first = (await c.call_tool("list_conversations", {"limit": 2})).structured_content
        rest = (await c.call_tool("list_conversations", {"limit": 2, "cursor": first["next_cursor"]})).structured_content
        by_model = (await c.call_tool("list_conversations", {"model": "openai/gpt-4.1-mini"})).structured_content
        bad = await c.call_tool("list_conversations", {"cursor": "nope"})
        tool = {t.name: t for t in (await c.list_tools()).tools}["list_conversations"]
    assert [i["id"] for i in first["items"] + rest["items"]] == ids[::-1] and rest["next_cursor"] is None
    assert [i["id"] for i in by_model["items"]] == [ids[1]]
    item = first["items"][0]
    assert (item["turns"], item["models"], item["uri"]) == (1, [MODEL], f"hive://conversations/{ids[2]}")
    assert bad.is_error and "cursor" in text_of(bad)
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert len(json.dumps(tool.model_dump(by_alias=True, exclude_none=True))) <= 1536


async def test_unpriced_turns_list_no_cost_and_are_counted(server: MCPServer, upstream: Upstream, mode: str) -> None:
    upstream.script(Reply.text("a", model="llama3.2"), Reply.text("b"))
    async with connect(server, mode) as c:
        cid = (await call(c, prompt="1", model="openai/llama3.2")).structured_content["conversation_id"]
        alone = (await c.call_tool("list_conversations", {})).structured_content["items"][0]
        await call(c, prompt="2", conversation_id=cid)
        mixed = (await c.call_tool("list_conversations", {})).structured_content["items"][0]
        thread = json.loads((await c.read_resource(f"hive://conversations/{cid}")).contents[0].text)
    assert (alone["cost_usd"], alone["unpriced_turns"]) == (None, 1)
    assert mixed["cost_usd"] > 0 and mixed["unpriced_turns"] == 1 and mixed["turns"] == 2
    assert (thread["cost_usd"], thread["unpriced_turns"]) == (mixed["cost_usd"], 1)


async def test_resources_list_and_read_the_conversations(server: MCPServer, upstream: Upstream, mode: str) -> None:
    async with connect(server, mode) as c:
        cid = (await call(c, prompt="hi", system="S1 sys")).structured_content["conversation_id"]
        listed = [r.uri for r in (await c.list_resources()).resources]
        templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
        index = json.loads((await c.read_resource("hive://conversations")).contents[0].text)
        thread = json.loads((await c.read_resource(f"hive://conversations/{cid}")).contents[0].text)
        with pytest.raises(Exception, match="unknown conversation"):
            await c.read_resource("hive://conversations/conv_" + "B" * 22)
    assert "hive://conversations" in listed and "hive://conversations/{id}" in templates
    assert [i["id"] for i in index["items"]] == [cid]
    assert [{k: v for k, v in m.items() if k != "turn"} for m in thread["messages"]] == [
        {"role": "system", "content": "S1 sys"}, user("hi"), assistant("default reply")
    ]
    assert [m["turn"] for m in thread["messages"]] == [0, 0, 0]
    assert thread["turn_records"][0]["model"] == MODEL and thread["turns"] == 1


class Notifications:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, (types.ResourceListChangedNotification, types.ResourceUpdatedNotification)):
            self.seen.append(message)

    def updated(self) -> set[str]:
        return {m.params.uri for m in self.seen if isinstance(m, types.ResourceUpdatedNotification)}


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_legacy_sessions_hear_new_and_updated_conversations(server: MCPServer, upstream: Upstream) -> None:
    heard = Notifications()
    async with connect(server, "legacy", message_handler=heard) as c:
        await c.session.subscribe_resource("hive://conversations")
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        await until(lambda: "hive://conversations" in heard.updated(), "the index was updated")
        await c.session.subscribe_resource(f"hive://conversations/{cid}")
        await call(c, prompt="again", conversation_id=cid)
        await until(lambda: f"hive://conversations/{cid}" in heard.updated(), "the conversation was updated")
    assert any(isinstance(m, types.ResourceListChangedNotification) for m in heard.seen)


async def test_listen_streams_hear_new_and_updated_conversations(server: MCPServer, upstream: Upstream) -> None:
    async with connect(server, "auto") as c:
        cid = (await call(c, prompt="hi")).structured_content["conversation_id"]
        uri = f"hive://conversations/{cid}"
        async with c.listen(resources_list_changed=True, resource_subscriptions=["hive://conversations", uri]) as sub:
            await call(c, prompt="again", conversation_id=cid)
            await hear(sub, {"ResourcesListChanged", "hive://conversations", uri})


def test_changes_to_conversations_are_told_once_a_second_and_none_is_lost() -> None:
    import threading

    from hive_mcp.mcp.notify import Touched

    now = [100.0]
    touched = Touched(lambda cid: ("hive://conversations", f"hive://conversations/{cid}"), monotonic=lambda: now[0])
    told: list[list[str]] = []
    second = threading.Event()

    def listener() -> None:  # as the notifier's pump: what changed, asked when told
        told.append(touched.updated())
        if len(told) == 2:
            second.set()

    touched.add_listener(listener)
    touched.touch("c_one", "alice")  # told at once
    touched.touch("c_two", "alice")  # a call a moment later: waits for the second to end
    touched.touch("c_three", "bob")
    assert told == [["hive://conversations", "hive://conversations/c_one"]]
    now[0] = 101.0
    assert second.wait(10)  # the deferred one arrives (the timer runs on real time, bounded here)
    assert told[1] == ["hive://conversations", "hive://conversations/c_three", "hive://conversations/c_two"]
    assert touched.owners() == {"alice", "bob"}

