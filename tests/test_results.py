"""What an agent reads from a completion, and answers too big for one reply, through the SDK's real client
(in process, both protocol eras) and litellm's real HTTP path to a scripted upstream.

The structured result holds the answer and what an agent acts on; the call's bookkeeping rides in `_meta`.
A reply over the inline limit (by litellm's counter for its model) carries its first part, says what was left
out and links the whole as `hive://results/{id}`, readable whole, by `?part=N`, or through `read_result`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from hive_mcp.dumps import DumpStore
from hive_mcp.redact import redact_text
from hive_mcp.mcp.results import CALL_META, CompletionAnswer, call_facts
from hive_mcp.results import ResultStore
from hive_mcp.results.sqlite_store import SQLiteResults
from harness.upstream import Reply, Upstream
from tests.clients import connect, hear, mcp_server, text_of, until
from tests.conftest import MODEL, TEST_KEY, Clock
from tests.paged_answers import long_answer, read_text

LIMIT = 100
"""The inline limit of the tests' servers, in tokens: small, so an answer of a few thousand is paged."""


@pytest.fixture
def results(tmp_path: Path, clock: Clock) -> ResultStore:
    return SQLiteResults(tmp_path / "hive-mcp.sqlite3", ttl_s=60, clock=clock)


@pytest.fixture
def paging(provider: Any, store: DumpStore, results: ResultStore) -> MCPServer:
    return mcp_server(provider, store, results=results, result_inline_tokens=LIMIT)


def parts_of(result: types.CallToolResult) -> tuple[types.TextContent, types.TextContent, types.ResourceLink]:
    first, note, link = result.content
    assert isinstance(first, types.TextContent) and isinstance(note, types.TextContent), result.content
    assert isinstance(link, types.ResourceLink), result.content
    return first, note, link


# ---------------------------------------------------------------------------
# What an agent reads
# ---------------------------------------------------------------------------


async def test_structured_content_is_the_answer_and_what_an_agent_acts_on(
    provider: Any, store: DumpStore, upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.text("Paris.", usage={"prompt_tokens": 12, "completion_tokens": 5}))
    async with connect(mcp_server(provider, store), mode) as c:
        r = await c.call_tool("complete", {"prompt": "Capital of France?"})
        [tool] = [t for t in (await c.list_tools()).tools if t.name == "complete"]
    assert not r.is_error and text_of(r) == "Paris."  # the text block is the answer alone
    s = r.structured_content
    assert s is not None and list(s)[0] == "content"  # the answer first
    assert s == {"content": "Paris.", "model": "gpt-4o-mini", "stop_reason": "stop", "tool_calls": []}
    facts = call_facts(r)  # the bookkeeping, in the result's _meta
    assert r.meta is not None and CALL_META in r.meta  # beside what the SDK itself puts there (serverInfo)
    assert (facts["input_tokens"], facts["output_tokens"], facts["attempts"]) == (12, 5, 1)
    assert facts["cost_usd"] > 0 and "dump_id" not in facts  # nothing retried: no dump reference
    # The outputSchema says exactly what structured content may hold: no usage, cost or dump fields.
    assert tool.output_schema is not None
    assert set(tool.output_schema["properties"]) == set(CompletionAnswer.model_fields)
    assert set(tool.output_schema["required"]) == {"content", "model", "stop_reason", "tool_calls"}
    assert not {"input_tokens", "cost_usd", "attempts", "dump_uri"} & set(tool.output_schema["properties"])


async def test_a_retried_call_names_its_dump_in_meta_not_in_structured_content(
    provider: Any, store: DumpStore, upstream: Upstream, mode: str
) -> None:
    upstream.script(Reply.error(500, "scripted outage"), Reply.stream(["after ", "a retry"]))
    async with connect(mcp_server(provider, store), mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "hi"})
    assert not r.is_error and r.structured_content is not None
    assert set(r.structured_content) == {"content", "model", "stop_reason", "tool_calls"}
    facts = call_facts(r)
    assert facts["attempts"] == 2 and facts["dump_uri"] == f"hive://failed-requests/{facts['dump_id']}"
    assert store.read(facts["dump_id"]).outcome == "recovered"


# ---------------------------------------------------------------------------
# Answers too big for one reply
# ---------------------------------------------------------------------------


async def test_a_big_answer_is_paged_and_joined_back_exactly(
    paging: MCPServer, provider: Any, upstream: Upstream, mode: str
) -> None:
    answer = long_answer()
    upstream.script(Reply.text(answer))
    async with connect(paging, mode) as c:
        r = await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
        s = r.structured_content
        assert not r.is_error and s is not None and s["truncated"] is True
        uri, count = s["result_uri"], s["parts"]
        assert uri.startswith("hive://results/") and count > 2
        first, note, link = parts_of(r)
        assert link.uri == uri and link.mime_type == "text/plain"
        assert first.text == s["content"] and answer.startswith(first.text) and first.text != answer
        assert f"{count - 1} more part" in note.text and uri in note.text and "read_result" in note.text
        assert s["omitted_tokens"] == provider.count_text(answer, MODEL) - provider.count_text(first.text, MODEL)
        whole = await read_text(c, uri)
        parts = [await read_text(c, f"{uri}?part={n}") for n in range(1, count + 1)]
        tool = [(await c.call_tool("read_result", {"id": uri.rsplit("/", 1)[1], "part": n})) for n in (2, count)]
        with pytest.raises(MCPError, match="part") as past:
            await c.read_resource(f"{uri}?part={count + 1}")
        # Only ASCII digits name a part: a superscript or another script's digit, or more digits than any part
        # number has, is no part, answered as one past the last is (not Python's int() error, not another part).
        for odd in ("\u00b2", "\u0663", "9" * 5000, "+2", " 2"):
            with pytest.raises(MCPError) as refused:
                await c.read_resource(f"{uri}?part={quote(odd)}")
            assert refused.value.error.code == past.value.error.code
            assert str(refused.value).endswith(f"no such part: part is 1 to {count}")
    assert whole == answer and "".join(parts) == answer and parts[0] == first.text
    assert all(0 < provider.count_text(p, MODEL) <= LIMIT for p in parts)
    assert tool[0].content[0].text == parts[1] and tool[1].content[0].text == parts[-1]
    assert f"part 2 of {count}" in tool[0].content[-1].text and len(tool[1].content) == 1  # the last says no more


async def test_a_streamed_big_answer_is_paged_too(paging: MCPServer, upstream: Upstream, mode: str) -> None:
    answer = long_answer(120)
    upstream.script(Reply.stream([answer[i : i + 500] for i in range(0, len(answer), 500)]))
    async with connect(paging, mode) as c:
        r = await c.call_tool("stream_complete", {"prompt": "a long one", "max_tokens": 8000})
        s = r.structured_content
        assert s is not None and s["truncated"] is True
        assert await read_text(c, s["result_uri"]) == answer


async def test_an_answer_within_the_limit_is_whole(paging: MCPServer, upstream: Upstream, mode: str) -> None:
    answer = long_answer(3)
    upstream.script(Reply.text(answer))
    async with connect(paging, mode) as c:
        r = await c.call_tool("complete", {"prompt": "short"})
        listed = (await c.list_resources()).resources
    assert text_of(r) == answer and r.structured_content is not None and "truncated" not in r.structured_content
    assert not [res for res in listed if res.uri.startswith("hive://results/")]


async def test_results_are_listed_and_expire_after_their_ttl(
    paging: MCPServer, upstream: Upstream, clock: Clock, mode: str
) -> None:
    upstream.script(Reply.text(long_answer()))
    async with connect(paging, mode) as c:
        uri = (await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})).structured_content["result_uri"]
        [entry] = [res for res in (await c.list_resources()).resources if res.uri.startswith("hive://results/")]
        assert entry.uri == uri and entry.mime_type == "text/plain" and entry.size == len(long_answer().encode())
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        assert "hive://results/{id}{?part}" in templates
        clock.now += 59
        assert await read_text(c, uri) == long_answer()
        clock.now += 2  # past the 60 s TTL
        with pytest.raises(MCPError, match="not found"):
            await c.read_resource(uri)
        expired = await c.call_tool("read_result", {"id": uri.rsplit("/", 1)[1], "part": 1})
        assert not [res for res in (await c.list_resources()).resources if res.uri.startswith("hive://results/")]
    assert expired.is_error and "not found" in text_of(expired)


async def test_read_result_refuses_bad_arguments_in_one_line(paging: MCPServer, mode: str) -> None:
    async with connect(paging, mode) as c:
        unknown = await c.call_tool("read_result", {"id": "0" * 32, "part": 1})
        bad_part = await c.call_tool("read_result", {"id": "0" * 32, "part": 0})
        [tool] = [t for t in (await c.list_tools()).tools if t.name == "read_result"]
    assert unknown.is_error and "not found" in text_of(unknown) and "\n" not in text_of(unknown)
    assert bad_part.is_error and text_of(bad_part).startswith("invalid arguments: part")
    assert tool.annotations is not None and tool.annotations.read_only_hint is True


async def test_a_store_that_fails_leaves_the_answer_whole(
    provider: Any, store: DumpStore, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocked").write_text("a file where the store's directory should be")
    broken = SQLiteResults(tmp_path / "blocked" / "hive-mcp.sqlite3", ttl_s=60)
    server = mcp_server(provider, store, results=broken, result_inline_tokens=LIMIT)
    upstream.script(Reply.text(long_answer()), Reply.text(long_answer(200)))
    async with connect(server, "legacy") as c:
        first = await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
        second = await c.call_tool("complete", {"prompt": "another", "max_tokens": 8000})
    assert text_of(first) == long_answer() and text_of(second) == long_answer(200)  # nothing lost
    assert "truncated" not in (first.structured_content or {})
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "results store" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one warning per outage


async def test_a_paged_answer_keeps_no_secret(
    provider: Any, store: DumpStore, upstream: Upstream, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "results.sqlite3"
    results = SQLiteResults(path, ttl_s=60, redact=lambda text: redact_text(text, [TEST_KEY]))
    lines = long_answer().splitlines(keepends=True)
    answer = "".join(lines[:150]) + f"the key is {TEST_KEY}\n" + "".join(lines[150:])
    upstream.script(Reply.text(answer))
    async with connect(mcp_server(provider, store, results=results, result_inline_tokens=LIMIT), mode) as c:
        r = await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
        s = r.structured_content
        assert s is not None and s["truncated"] is True
        whole = await read_text(c, s["result_uri"])
    assert TEST_KEY not in whole and "the key is " in whole and whole.startswith(s["content"])
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("results.sqlite3*"))
    assert TEST_KEY.encode() not in stored and b"the key is " in stored


async def test_a_new_result_changes_its_owners_resource_list(
    paging: MCPServer, upstream: Upstream, mode: str
) -> None:
    heard: list[Any] = []

    async def hear_list_changed(message: Any) -> None:
        if isinstance(message, types.ResourceListChangedNotification):
            heard.append(message)

    upstream.script(Reply.text(long_answer()))
    async with connect(paging, mode, message_handler=hear_list_changed) as c:
        if mode == "legacy":
            r = await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
            await until(lambda: bool(heard), "resources/list_changed")
        else:  # a 2026-07-28 client listens for it
            async with c.listen(resources_list_changed=True) as sub:
                r = await c.call_tool("complete", {"prompt": "a long one", "max_tokens": 8000})
                await hear(sub, {"ResourcesListChanged"})
    assert r.structured_content is not None and r.structured_content["truncated"] is True
