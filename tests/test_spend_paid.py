"""Every call paid for: a call that ends early is charged for what it sent and what it relayed, on a real
SQLite file and on a real valkey-server, through the SDK's real Client and litellm's real HTTP path.

Prices are litellm's map for gpt-4o-mini ($0.15 / $0.60 per million tokens). A budget that fits one call
exactly (plus a little) is spent by any charge: the call after a charged one is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore

from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.retry import RetryPolicy
from hive_mcp.spend import Budgets, CallRecord, SQLiteBackend, Spend
from hive_mcp.spend.budgets import micro
from hive_mcp.spend.ledger import Backend
from hive_mcp.provider.stream import OUTPUT_SLACK_TOKENS
from tests.clients import MODEL, connect, mcp_server, Progress, text_of, until
from tests.conftest import FAST_RETRY, TEST_KEY
from harness.upstream import Reply, Upstream, tool_call_delta
from tests.spend_calls import (
    EPOCH, IN, MAX_TOKENS, OUT, WORDS, cancel_once, charged, fallback_server, held_by, one_call_budget, requests_seen,
    retries_logged,
)


def only_call(backend: Backend) -> CallRecord:
    [call] = backend.calls(EPOCH)
    return call


async def test_a_cancelled_stream_is_charged_and_the_next_call_refused(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    spend = Spend(ledger, one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(Reply.stream(WORDS, hold_after=38), Reply.text("must not be reached"))
    progress = Progress()
    relayed = "".join(WORDS[:38])
    async with connect(server, "legacy") as c:
        args = {"prompt": "hello", "max_tokens": MAX_TOKENS}

        async def relayed_all() -> None:
            await progress.wait_for(lambda _: progress.text == relayed)

        await cancel_once(c, "stream_complete", args, relayed_all, progress)
        upstream.release()
        after = await c.call_tool("complete", {"prompt": "hello", "max_tokens": MAX_TOKENS})
    call = only_call(spend.settled())
    assert call.estimated and call.cost == charged(provider, "hello", relayed)
    assert call.output_tokens == provider.count_text(relayed, MODEL)
    spent, held = spend.settled().state(list(spend.budgets.items), spend.clock())["all:day"]
    assert (spent, held) == (call.cost, 0)
    assert after.is_error and "overall daily budget" in text_of(after), text_of(after)
    assert len(upstream.chat_requests()) == 1


async def test_output_relayed_before_a_mid_stream_failure_is_charged(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    spend = Spend(ledger, one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(Reply.stream(WORDS, drop_after=30))
    progress = Progress()
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(
            "stream_complete", {"prompt": "hello", "max_tokens": MAX_TOKENS}, progress_callback=progress
        )
        after = await c.call_tool("complete", {"prompt": "hello", "max_tokens": MAX_TOKENS})
    assert failed.is_error and progress.text == "".join(WORDS[:30])
    call = only_call(spend.settled())
    assert call.estimated and call.cost == charged(provider, "hello", progress.text)
    assert after.is_error and "overall daily budget" in text_of(after)


def with_a_short_deadline(store: DumpStore, upstream: Upstream, tmp_path: Path) -> tuple[LiteLLMProvider, Spend, Any]:
    """A provider with a 2 s deadline, a one-call budget, and the server over them. What a stream sends must
    reach the caller within the deadline: litellm is warmed first, as `serve` does (test_faults.py's deadline
    test says why), and the deadline is far longer than a warmed call takes."""
    provider = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store,
        deadline_s=2.0,
    )  # fmt: skip
    provider.warm_up()
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    return provider, spend, mcp_server(provider, store, spend=spend)


async def test_a_stream_cut_by_the_deadline_is_charged(store: DumpStore, upstream: Upstream, tmp_path: Path) -> None:
    provider, spend, server = with_a_short_deadline(store, upstream, tmp_path)
    upstream.script(Reply.stream(WORDS, hold_after=20))
    progress = Progress()
    async with connect(server, "legacy") as c:
        cut = await c.call_tool("stream_complete", {"prompt": "hello", "max_tokens": MAX_TOKENS}, progress_callback=progress)
    upstream.release()
    assert cut.is_error and "deadline" in text_of(cut)
    call = only_call(spend.settled())
    assert call.estimated and call.cost == charged(provider, "hello", "".join(WORDS[:20]))


async def test_a_stream_cut_while_writing_a_tool_call_is_charged_what_the_call_holds_so_far(
    store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """A tool call is not relayed as it streams, but the upstream bills every token of it: cut short, the call
    owes its name and arguments so far, as a cut text stream owes its text."""
    provider, spend, server = with_a_short_deadline(store, upstream, tmp_path)
    pieces = ['{"notes": "', *WORDS[:20]]
    upstream.script(
        Reply.stream([tool_call_delta(0, id="call_1", name="save"), *(tool_call_delta(0, args=p) for p in pieces)],
                     hold_after=len(pieces) + 1)
    )  # fmt: skip
    async with connect(server, "legacy") as c:
        cut = await c.call_tool("stream_complete", {"prompt": "hello", "max_tokens": MAX_TOKENS})
    upstream.release()
    assert cut.is_error and "deadline" in text_of(cut)
    call = only_call(spend.settled())
    assert call.estimated and call.cost == charged(provider, "hello", "save" + "".join(pieces))


async def test_a_reply_the_provider_billed_is_charged_when_the_call_fails(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """Empty replies are retried and then given up on; the provider billed each one it answered."""
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    billed = {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}
    upstream.script(*[Reply.text("", usage=billed)] * 3)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("complete", {"prompt": "hello", "max_retries": 2})
    assert failed.is_error and "empty" in text_of(failed)
    assert len(upstream.chat_requests()) == 3
    call = only_call(spend.settled())
    assert (call.input_tokens, call.output_tokens) == (120, 9)
    assert call.cost == micro(120 * IN + 9 * OUT) and not call.estimated


async def test_a_reply_the_provider_billed_is_charged_when_the_call_is_cancelled_before_its_retry(
    store: DumpStore, upstream: Upstream, ledger: Backend
) -> None:
    """An empty reply (billed), then the client cancels during the minute's wait before the retry: the call owes
    that reply's usage, and nothing more (no attempt was in flight)."""
    provider = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=RetryPolicy(base_delay_s=60), dump_store=store
    )
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(Reply.text("", usage={"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}))
    with retries_logged() as retries:
        async with connect(server, "legacy") as c:
            await cancel_once(c, "complete", {"prompt": "hello"}, lambda: until(lambda: retries.count == 1, "a retry"))
    call = only_call(spend.settled())
    assert (call.input_tokens, call.output_tokens, call.estimated) == (40, 3, False)
    assert call.cost == micro(40 * IN + 3 * OUT) and len(upstream.chat_requests()) == 1


async def test_a_stream_past_max_tokens_is_cut_and_charged_within_its_reservation(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """An upstream that ignores max_tokens (a proxy, a local server) streams 200 tokens against 5."""
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    words = [f" w{i}" for i in range(200)]
    upstream.script(Reply.stream(words, usage={"prompt_tokens": 8, "completion_tokens": 200, "total_tokens": 208}))
    progress = Progress()
    async with connect(server, "legacy") as c:
        result = await c.call_tool("stream_complete", {"prompt": "hello", "max_tokens": 5}, progress_callback=progress)
    assert not result.is_error, text_of(result)
    content = result.structured_content["content"]
    assert result.structured_content["stop_reason"] == "length"
    assert content and progress.text == content and content != "".join(words)
    assert (provider.count_text(content, MODEL) or 0) <= 5 + OUTPUT_SLACK_TOKENS
    call = only_call(spend.settled())
    prompt = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL) or 0
    assert call.output_tokens <= 5 and call.cost <= micro(prompt * IN + 5 * OUT)


def _png(width: int, height: int) -> str:
    """A data URI of a PNG's header: enough for litellm's counter to size the image."""
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(raw).decode()


async def test_the_reservation_counts_tools_schemas_and_images(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    budgets = Budgets.from_settings(day=100, month=None, section={}, names={"caller": ["local"], "model": [MODEL]})
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), budgets, provider)
    held: list[int] = []
    reserve = spend.backend.reserve

    def seen(r: Any, b: Any) -> dict[str, int]:
        held.append(r.amount)
        return reserve(r, b)

    spend.backend.reserve = seen  # type: ignore[method-assign]
    server = mcp_server(provider, store, spend=spend)
    tools = [{"name": f"tool_{i}", "description": "lorem ipsum dolor sit amet " * 150} for i in range(100)]
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string", "description": "x " * 200}
                                                for i in range(100)}}  # fmt: skip
    response_format = {"type": "json_schema", "json_schema": {"name": "big", "schema": schema}}
    image = [{"role": "user", "content": [{"type": "text", "text": "hello"},
                                          {"type": "image_url", "image_url": {"url": _png(2048, 2048)}}]}]  # fmt: skip
    upstream.script(*[Reply.text("{}")] * 4)
    async with connect(server, "legacy") as c:
        for extra in ({}, {"tools": tools}, {"response_format": response_format}):
            result = await c.call_tool("complete", {"prompt": "hello", "max_tokens": MAX_TOKENS, **extra})
            assert not result.is_error, text_of(result)
        result = await c.call_tool("complete", {"messages": image, "max_tokens": MAX_TOKENS})
        assert not result.is_error, text_of(result)
    plain, with_tools, with_schema, with_image = held
    import json

    tools_tokens = provider.count_text(json.dumps(tools), MODEL) or 0
    schema_tokens = provider.count_text(json.dumps(schema), MODEL) or 0
    assert len(json.dumps(tools)) > 400_000
    assert with_tools - plain >= micro(0.9 * tools_tokens * IN)
    assert with_schema - plain >= micro(0.9 * schema_tokens * IN)
    assert with_image - plain >= micro(500 * IN)  # a 2048x2048 image is hundreds of tokens


async def test_a_fallback_into_a_group_whose_budget_refuses_is_not_taken(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend
) -> None:
    server, spend = fallback_server(upstream, store, tmp_path, ledger, smart_day=0.000001)
    upstream.script(*[Reply.error(503)] * 3, Reply.text("smart answered", model="gpt-4o"))
    async with connect(server, "legacy") as c:
        results = [await c.call_tool("complete", {"prompt": "hello", "model": "fast", "max_retries": 0}) for _ in range(3)]
    assert all(r.is_error for r in results)
    text = text_of(results[0])
    assert "smart" in text and "daily budget" in text and "\n" not in text, text
    assert [r.body["model"] for r in upstream.chat_requests()] == ["gpt-4o-mini"] * 3  # never smart
    assert spend.settled().calls(EPOCH) == []
    assert spend.settled().state(list(spend.budgets.items), spend.clock())["model:smart:day"] == (0, 0)


async def test_a_fallback_is_charged_to_the_group_that_answered_at_its_own_price(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend
) -> None:
    server, spend = fallback_server(upstream, store, tmp_path, ledger, smart_day=1.0)
    held = held_by(ledger, spend)
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    upstream.script(Reply.error(503), Reply.text("smart answered", model="gpt-4o", usage=usage))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "model": "fast", "max_retries": 0, "max_tokens": 100})
    assert not result.is_error, text_of(result)
    [call] = spend.settled().calls(EPOCH)
    assert (call.group, call.called) == ("smart", "fast")
    assert call.cost == micro(10 * 2.5e-6 + 20 * 10e-6)  # gpt-4o's prices
    prompt = LiteLLMProvider(dump_store=False).count_tokens([{"role": "user", "content": "hello"}], "smart") or 0
    assert held[0]["model:smart:day"] == (0, micro(prompt * 2.5e-6 + 100 * 10e-6))  # held at smart's own price
    assert spend.settled().state(list(spend.budgets.items), spend.clock())["model:smart:day"] == (call.cost, 0)


async def test_a_whole_reply_past_max_tokens_is_cut_and_charged_within_its_reservation(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    text = "".join(f" w{i}" for i in range(200))
    upstream.script(Reply.text(text, usage={"prompt_tokens": 8, "completion_tokens": 400, "total_tokens": 408}))
    async with connect(server, "legacy") as c:
        result = await c.call_tool("complete", {"prompt": "hello", "max_tokens": 5})
    assert not result.is_error, text_of(result)
    content = result.structured_content["content"]
    assert result.structured_content["stop_reason"] == "length"
    assert content and text.startswith(content) and (provider.count_text(content, MODEL) or 0) <= 5
    assert call_facts(result)["output_tokens"] == 5
    call = only_call(spend.settled())
    assert call.output_tokens == 5 and call.estimated and call.cost == micro(8 * IN + 5 * OUT)


async def test_a_reply_stopped_by_the_content_filter_is_charged(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    """The provider read the prompt and wrote part of an answer before its filter stopped it: billed."""
    from harness.shapes import azure_filtered_reply

    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets(), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(azure_filtered_reply(["violence"], content="partial"))
    async with connect(server, "legacy") as c:
        failed = await c.call_tool("complete", {"prompt": "hello"})
    assert failed.is_error and "content_policy" in text_of(failed)
    call = only_call(spend.settled())
    assert (call.input_tokens, call.output_tokens, call.estimated) == (11, 7, False)  # the reply's usage
    assert call.cost == micro(11 * IN + 7 * OUT)


async def test_a_cancelled_complete_is_charged_its_prompt_once_the_upstream_has_it(
    provider: LiteLLMProvider, store: DumpStore, upstream: Upstream, tmp_path: Path
) -> None:
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    upstream.script(Reply.hang())
    async with connect(server, "legacy") as c:
        await cancel_once(c, "complete", {"prompt": "hello", "max_tokens": MAX_TOKENS}, requests_seen(upstream))
    call = only_call(spend.settled())
    prompt = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL) or 0
    assert call.estimated and (call.input_tokens, call.output_tokens) == (prompt, 0)
    assert call.cost == micro(prompt * IN)


@pytest.mark.parametrize("end", ["stream-cancelled", "stream-failed-mid-stream", "complete-cancelled"])
async def test_a_fallback_cut_short_is_charged_to_the_group_that_answered_at_its_own_price(
    upstream: Upstream, store: DumpStore, tmp_path: Path, ledger: Backend, end: str
) -> None:
    """`fast` fails, `smart` (gpt-4o) takes the call: a call that ends early there owes smart's prices and
    smart's budget, and the row still names `fast` as the group called."""
    server, spend = fallback_server(upstream, store, tmp_path, ledger, smart_day=1.0)
    tool, relayed, answer = {
        "stream-cancelled": ("stream_complete", WORDS[:38], Reply.stream(WORDS, model="gpt-4o", hold_after=38)),
        "stream-failed-mid-stream": ("stream_complete", WORDS[:30], Reply.stream(WORDS, model="gpt-4o", drop_after=30)),
        "complete-cancelled": ("complete", [], Reply.hang()),
    }[end]  # fmt: skip
    upstream.script(Reply.error(503), answer)
    args = {"prompt": "hello", "model": "fast", "max_retries": 0, "max_tokens": MAX_TOKENS}
    progress = Progress()
    async with connect(server, "legacy") as c:
        if end == "stream-failed-mid-stream":
            failed = await c.call_tool(tool, args, progress_callback=progress)
            assert failed.is_error, text_of(failed)
        else:

            async def ready() -> None:
                await requests_seen(upstream, 2)()  # the second is smart's
                await progress.wait_for(lambda _: progress.text == "".join(relayed))

            await cancel_once(c, tool, args, ready, progress)
            upstream.release()
    assert progress.text == "".join(relayed)
    [call] = spend.settled().calls(EPOCH)
    assert (call.group, call.called, call.deployment) == ("smart", "fast", "openai/gpt-4o")
    counter = LiteLLMProvider(dump_store=False)  # counted for the deployment that answered
    prompt = counter.count_tokens([{"role": "user", "content": "hello"}], "openai/gpt-4o") or 0
    out = (counter.count_text(progress.text, "openai/gpt-4o") or 0) if relayed else 0
    assert call.estimated and (call.input_tokens, call.output_tokens) == (prompt, out) and prompt > 0
    assert call.cost == micro(prompt * 2.5e-6 + out * 10e-6)  # gpt-4o's prices, not gpt-4o-mini's
    assert spend.settled().state(list(spend.budgets.items), spend.clock())["model:smart:day"] == (call.cost, 0)


@pytest.mark.parametrize("end", ["answered", "cancelled"])
async def test_a_wildcard_group_call_is_charged_at_the_price_of_the_model_it_named(
    upstream: Upstream, store: DumpStore, tmp_path: Path, end: str
) -> None:
    """A wildcard group is priced for the name each call gives it: its answer, or its cut-short call, is charged
    at that model's prices, never as unpriced."""
    from hive_mcp.llms import load_config
    from hive_mcp.provider.routing import ModelRouter

    path = tmp_path / "config.yaml"
    path.write_text(
        'model_list:\n  - model_name: "openai/*"\n'
        f'    litellm_params: {{model: "openai/*", api_base: "{upstream.base_url}", api_key: sk-x}}\n'
    )
    router = ModelRouter(load_config(path, {}))
    provider = LiteLLMProvider(model=MODEL, router=router, retry=FAST_RETRY, dump_store=store)
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), one_call_budget(provider), provider)
    server = mcp_server(provider, store, spend=spend)
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    upstream.script(Reply.text("ok", usage=usage) if end == "answered" else Reply.hang())
    args = {"prompt": "hello", "model": MODEL, "max_tokens": MAX_TOKENS}
    async with connect(server, "legacy") as c:
        if end == "answered":
            result = await c.call_tool("complete", args)
            assert not result.is_error, text_of(result)
        else:
            await cancel_once(c, "complete", args, requests_seen(upstream))
    call = only_call(spend.settled())
    assert not call.unpriced and call.deployment == MODEL
    if end == "answered":
        assert call.cost == micro(10 * IN + 20 * OUT)
    else:
        prompt = provider.count_tokens([{"role": "user", "content": "hello"}], MODEL) or 0
        assert call.estimated and call.cost == micro(prompt * IN) > 0
