"""Hardening: upstream faults seen through the MCP server.

Every upstream fault is scripted on the test upstream and exercised through the
SDK's real in-process `Client`, `build_server` and the real LiteLLMProvider
(litellm is never mocked). Each case checks the documented outcome: how many
upstream requests were made (retried or not), that the client got either a
complete result or one clear error line (category, model, attempts), and that
exactly one dump was written per failed or retried call (none for a call that
succeeded first time).

Races are settled by waiting on events or by polling a condition with a bounded
deadline; nothing sleeps to hide a race.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore, FailureDump
from hive_mcp.mcp import dump_uri
from hive_mcp.provider import LiteLLMProvider
from tests.clients import Progress, mcp_server, text_of
from tests.conftest import DEADLINE_S, FAST_RETRY, MODEL, TEST_KEY
from tests.fault_calls import WAIT, call
from harness.upstream import Reply, Upstream, tool_call_delta

TOOLS = ["complete", "stream_complete"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def new_dumps(store: DumpStore, before: set[str]) -> list[FailureDump]:
    """The dumps written since `before` (a set of ids), read back from disk."""
    ids = dump_ids(store) - before
    assert store.count() == len(before) + len(ids)  # nothing else came or went
    return [store.read(i) for i in sorted(ids)]


def dump_ids(store: DumpStore) -> set[str]:
    return {item.id for item in store.list(limit=200).items}


def assert_one_clear_error(result: types.CallToolResult, category: str, attempts: int, dump: FailureDump) -> str:
    """The client got one line: category, model, attempts, and where the recorded request is."""
    assert result.is_error, result
    text = text_of(result)
    plural = "attempt" if attempts == 1 else "attempts"
    assert text.startswith(f"{category} error from model {MODEL} after {attempts} {plural}: "), text
    assert "\n" not in text and "Traceback" not in text and "{" not in text, text
    assert text.endswith(f"[request recorded: {dump_uri(dump.id)}]"), text
    # What an agent acts on: the category, and the line again as `content` (the output schema's shape, which
    # clients check an error result against too); no usage or attempts, and no `charged` (these servers keep no
    # spend ledger: tests/test_spend_billed_replies.py shows it).
    assert result.structured_content == {
        "content": text, "model": MODEL, "stop_reason": "error", "tool_calls": [], "error": category
    }
    return text


def success_reply(tool: str, text: str = "recovered") -> Reply:
    return Reply.text(text) if tool == "complete" else Reply.stream([text[:3], text[3:]])


def http_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.fixture
def server(provider: LiteLLMProvider, store: DumpStore) -> MCPServer:
    return mcp_server(provider, store)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


# ---------------------------------------------------------------------------
# One fault, then success: retried, the client sees only the reply
# ---------------------------------------------------------------------------

# (first reply for `complete`, first reply for `stream_complete`, dump error_type,
#  recorded status (None: not checked), the delay the retry rule must have chosen)
RECOVERING = [
    pytest.param(
        lambda: Reply.error(429, headers={"retry-after-ms": "1500"}), None, "rate_limit", 429, (1.5, 1.5),
        id="429-retry-after-ms",
    ),
    pytest.param(
        lambda: Reply.error(429, headers={"retry-after": "3"}), None, "rate_limit", 429, (3.0, 3.0),
        id="429-retry-after-seconds",
    ),
    pytest.param(
        # An HTTP date has whole seconds, and a little time passes before it is read.
        lambda: Reply.error(429, headers={"retry-after": http_date(30)}), None, "rate_limit", 429, (27.0, 30.0),
        id="429-retry-after-http-date",
    ),
    pytest.param(
        # Unparseable: exponential backoff, 2 s for the first retry.
        lambda: Reply.error(429, headers={"retry-after": "soon-ish"}), None, "rate_limit", 429, (2.0, 2.0),
        id="429-retry-after-garbage",
    ),
    *[
        pytest.param(lambda s=s: Reply.error(s), None, "transient", s, (2.0, 2.0), id=str(s))
        for s in (500, 502, 503, 529)
    ],
    pytest.param(
        # The connection dies before any reply (complete), or after the stream's headers
        # but before any delta (stream): nothing reached the client, so it is retried.
        Reply.drop, lambda: Reply.stream(["lost"], drop_after=0), "connection", None, (2.0, 2.0),
        id="reset-before-any-text",
    ),
]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(("fault", "stream_fault", "error_type", "status", "delay"), RECOVERING)
async def test_fault_then_success_is_retried_and_recovers(
    server: MCPServer,
    upstream: Upstream,
    store: DumpStore,
    tool: str,
    fault: Callable[[], Reply],
    stream_fault: Callable[[], Reply] | None,
    error_type: str,
    status: int | None,
    delay: tuple[float, float],
) -> None:
    first = (stream_fault or fault)() if tool == "stream_complete" else fault()
    upstream.script(first, success_reply(tool), Reply.text("one request too many"))
    before = dump_ids(store)
    progress = Progress()

    result = await call(server, tool, {"prompt": "hi"}, progress)

    assert not result.is_error, text_of(result)
    assert text_of(result) == "recovered"
    assert len(upstream.chat_requests()) == 2  # the fault, then one retry
    [dump] = new_dumps(store, before)  # exactly one dump for the call
    assert dump.outcome == "recovered" and dump.error_type == error_type and dump.stream == (tool == "stream_complete")
    [attempt] = dump.attempts
    assert attempt.error_type == error_type
    if status is not None:
        assert attempt.status == status
    assert delay[0] <= attempt.delay_s <= delay[1], attempt
    s = result.structured_content
    assert s is not None
    facts = call_facts(result)
    assert (s["content"], facts["attempts"], facts["dump_id"], facts["dump_uri"]) == (
        "recovered", 2, dump.id, dump_uri(dump.id)
    )
    # The dump's listing counts the attempts as the result does: the failed one and the one that answered.
    [summary] = [i for i in store.list().items if i.id == dump.id]
    assert summary.attempt_count == dump.attempt_count == facts["attempts"]
    if tool == "stream_complete":
        assert progress.text == "recovered"  # the failed attempt sent nothing, so nothing repeats


# ---------------------------------------------------------------------------
# Faults the call does not survive: one clear error, one dump
# ---------------------------------------------------------------------------

FAILING = [
    pytest.param(
        lambda: [
            Reply.error(400, "This model's maximum context length is 8192 tokens", code="context_length_exceeded")
        ],
        {}, "context_window", 1, "not_retried",
        id="400-context-window-not-retried",
    ),
    pytest.param(
        lambda: [Reply.error(429, headers={"retry-after": "1"}) for _ in range(3)],
        {"max_retries": 2}, "rate_limit", 3, "gave_up",
        id="429-until-retries-run-out",
    ),
    pytest.param(
        lambda: [Reply.error(529, "Overloaded") for _ in range(3)],
        {"max_retries": 2}, "transient", 3, "gave_up",
        id="529-until-retries-run-out",
    ),
]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(("replies", "extra", "error_type", "attempts", "outcome"), FAILING)
async def test_fault_that_persists_is_one_clear_error(
    server: MCPServer,
    upstream: Upstream,
    store: DumpStore,
    tool: str,
    replies: Callable[[], list[Reply]],
    extra: dict[str, Any],
    error_type: str,
    attempts: int,
    outcome: str,
) -> None:
    upstream.script(*replies(), success_reply(tool, "must not be reached"))
    before = dump_ids(store)
    progress = Progress()

    result = await call(server, tool, {"prompt": "hi", **extra}, progress)

    assert len(upstream.chat_requests()) == attempts
    [dump] = new_dumps(store, before)
    assert_one_clear_error(result, error_type, attempts, dump)
    assert dump.outcome == outcome and dump.error_type == error_type and len(dump.attempts) == attempts
    assert progress.text == ""


@pytest.mark.parametrize("tool", TOOLS)
async def test_connection_refused_is_retried_then_one_clear_error(store: DumpStore, tool: str) -> None:
    provider = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=f"http://127.0.0.1:{closed_port()}/v1",
        retry=FAST_RETRY, dump_store=store,
    )
    server = mcp_server(provider, store)

    result = await call(server, tool, {"prompt": "hi", "max_retries": 2})

    [dump] = new_dumps(store, set())
    assert_one_clear_error(result, "connection", 3, dump)  # the first try and two retries
    assert dump.outcome == "gave_up" and [a.error_type for a in dump.attempts] == ["connection"] * 3
    assert [a.delay_s for a in dump.attempts] == [2.0, 4.0, 0.0]  # backoff, then no further wait


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        pytest.param(Reply.stream(["Hello ", "world", " and more"], drop_after=2), "connection", id="reset"),
        pytest.param(Reply.stream(["Hello ", "world", b"data: {not json\n\n", " and more"]), "bad_response",
                     id="malformed-sse-line"),
    ],
)
async def test_stream_fault_after_text_is_not_retried_and_repeats_nothing(
    server: MCPServer, upstream: Upstream, store: DumpStore, fault: Reply, error_type: str
) -> None:
    upstream.script(fault, Reply.stream(["Hello ", "world", " again"]))
    progress = Progress()

    result = await call(server, "stream_complete", {"prompt": "hi"}, progress)

    # Text was already out: a retry would send it twice, so the stream ends instead.
    assert len(upstream.chat_requests()) == 1
    assert progress.text == "Hello world"
    [dump] = new_dumps(store, set())
    text = assert_one_clear_error(result, error_type, 1, dump)
    assert "Hello" not in text
    assert dump.error_type == error_type and len(dump.attempts) == 1 and dump.stream


@pytest.mark.parametrize("tool", TOOLS)
async def test_truncated_tool_call_json_is_kept_raw(
    server: MCPServer, upstream: Upstream, store: DumpStore, tool: str
) -> None:
    if tool == "complete":
        reply = Reply.text(None, tool_calls=[{"id": "c1", "name": "f", "arguments": '{"a": [1, 2'}])
    else:
        reply = Reply.stream(
            [tool_call_delta(0, id="c1", name="f", args='{"a": '), tool_call_delta(0, args="[1, 2")],
            finish_reason="tool_calls",
        )
    upstream.script(reply)

    result = await call(server, tool, {"prompt": "call f", "tools": [{"name": "f"}]})

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["tool_calls"] == [{"id": "c1", "name": "f", "input": {"_raw": '{"a": [1, 2'}}]
    assert call_facts(result)["attempts"] == 1
    assert len(upstream.chat_requests()) == 1 and store.count() == 0  # first-time success: no dump


@pytest.mark.parametrize(
    ("tool", "reply", "text_before"),
    [
        pytest.param("complete", Reply.hang, "", id="complete-no-reply"),
        pytest.param("stream_complete", Reply.hang, "", id="stream-no-headers"),
        pytest.param("stream_complete", lambda: Reply.stream(["partial ", "never"], hold_after=1), "partial ",
                     id="stream-stalls-after-text"),
    ],
)
async def test_upstream_slower_than_the_deadline(
    upstream: Upstream, store: DumpStore, tool: str, reply: Callable[[], Reply], text_before: str
) -> None:
    """The deadline starts when the provider takes the call, and the request must reach the upstream within it
    for the upstream to be the slow part. litellm's first call in a process imports the rest of litellm before
    it sends anything, longer than a short deadline on a loaded machine: `serve` pays that at start-up
    (`warm_up`), and so does this test. The deadline is then far longer than a warmed call takes to send."""
    deadline = DEADLINE_S
    provider = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store,
        deadline_s=deadline,
    )
    provider.warm_up()
    server = mcp_server(provider, store)
    upstream.script(reply(), success_reply(tool, "must not be reached"))
    progress = Progress()

    started = time.monotonic()
    result = await call(server, tool, {"prompt": "hi"}, progress)
    elapsed = time.monotonic() - started

    assert upstream.request_seen.is_set(), "the request never reached the upstream: the deadline ran out first"
    assert deadline <= elapsed < deadline + WAIT
    assert len(upstream.chat_requests()) == 1  # the deadline covers retries too: none is started
    [dump] = new_dumps(store, set())
    text = assert_one_clear_error(result, "timeout", 1, dump)
    assert f"deadline of {deadline:g}s" in text
    assert dump.error_type == "timeout" and dump.outcome == "not_retried"
    assert progress.text == text_before
    # The abandoned request's connection was closed, not left hanging on the upstream.
    assert await anyio.to_thread.run_sync(upstream.client_gone.wait, WAIT)


@pytest.mark.parametrize("tool", TOOLS)
async def test_401_echoing_the_key_leaks_it_nowhere(
    server: MCPServer,
    upstream: Upstream,
    store: DumpStore,
    dump_dir: Path,
    tool: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # OpenAI echoes the bad key in its message. A 503 first, so the key also passes
    # through a retry (its warning log line and the dump's attempt record).
    upstream.script(
        Reply.error(503, f"upstream saw key {TEST_KEY}"),
        Reply.error(401, f"Incorrect API key provided: {TEST_KEY}", code="invalid_api_key",
                    err_type="invalid_request_error"),
        success_reply(tool, "must not be reached"),
    )
    litellm_loggers = [logging.getLogger(n) for n in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")]
    # Everything at DEBUG, litellm's own loggers included (also if something stopped them propagating).
    caplog.set_level(logging.DEBUG)
    for lg in litellm_loggers:
        caplog.set_level(logging.DEBUG, logger=lg.name)
    attached = [lg for lg in litellm_loggers if not lg.propagate]
    for lg in attached:
        lg.addHandler(caplog.handler)
    try:
        result = await call(server, tool, {"prompt": "hi"})
    finally:
        for lg in attached:
            lg.removeHandler(caplog.handler)

    assert len(upstream.chat_requests()) == 2  # 503 retried; 401 not
    [dump] = new_dumps(store, set())
    assert_one_clear_error(result, "auth", 2, dump)
    assert TEST_KEY not in result.model_dump_json()
    # The capture saw the call, litellm's records included, and none of it holds the key.
    assert any(r.name.startswith("LiteLLM") for r in caplog.records)
    assert any(r.name == "hive_mcp.provider" and r.levelno == logging.WARNING for r in caplog.records)
    assert TEST_KEY not in caplog.text
    for record in caplog.records:
        assert TEST_KEY not in record.getMessage()
    out, err = capfd.readouterr()  # litellm's own handler writes to stdout/stderr
    assert TEST_KEY not in out and TEST_KEY not in err
    files = [p for p in dump_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert TEST_KEY.encode() not in path.read_bytes(), path
