"""Hardening: upstream faults seen through the MCP server, and faults in the server itself.

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

import asyncio
import email.utils
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from hive_mcp.mcp.results import call_facts
from hive_mcp.dumps import DumpStore, FailureDump
from hive_mcp.limits import Limits
from hive_mcp.mcp import dump_uri
from hive_mcp.provider import LiteLLMProvider
from tests.clients import mcp_server, text_of
from tests.conftest import DEADLINE_S, FAST_RETRY, MODEL, TEST_KEY
from harness.upstream import Reply, Upstream, tool_call_delta

MODE = "auto"  # the 2026-07-28 era; the many-clients test below mixes in legacy sessions
WAIT = 10.0  # upper bound for anything that should happen promptly; never slept
TOOLS = ["complete", "stream_complete"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


class Progress:
    """Collects a call's progress notifications."""

    def __init__(self, on_first_text: Callable[[], None] | None = None) -> None:
        self.items: list[tuple[float, str | None]] = []
        self._on_first_text = on_first_text

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if message and self._on_first_text is not None and not self.text:
            self._on_first_text()
        self.items.append((progress, message))

    @property
    def text(self) -> str:
        return "".join(m for _, m in self.items if m)


async def call(
    server: MCPServer, tool: str, arguments: dict[str, Any], progress: Progress | None = None
) -> types.CallToolResult:
    """One tool call on a fresh in-process client; stream_complete always asks for progress."""
    if tool == "stream_complete" and progress is None:
        progress = Progress()
    async with Client(server, raise_exceptions=True, mode=MODE) as client:
        return await client.call_tool(tool, arguments, progress_callback=progress)


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
    assert result.structured_content == {"error": category}  # what an agent acts on, and nothing else
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


# ---------------------------------------------------------------------------
# Faults in the server: 100 clients leaving mid-stream
# ---------------------------------------------------------------------------

N_CLIENTS = 100
CALLS_PER_CLIENT = 1
CLOSE_S = 3.0
FD_SLACK = 2
"""litellm's pooled aiohttp session may keep one idle keep-alive connection open after
the final normal call (15 s keep-alive); both of its ends are in this process (the
client socket, and the socket the in-process upstream accepted), so 2 fds."""


def our_tasks() -> int:
    """The loop's tasks, less litellm's success-logging worker (`LoggingWorker._worker_loop`): litellm starts it on
    the first success log it is handed (a call's, once the call's task is done) and keeps it for the loop's life."""
    from litellm.litellm_core_utils.logging_worker import LoggingWorker

    worker = LoggingWorker._worker_loop.__code__
    return sum(1 for t in asyncio.all_tasks() if getattr(t.get_coro(), "cr_code", None) is not worker)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll `condition` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout}s: {what}")
        await anyio.sleep(0.02)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors through /proc")
async def test_hundred_clients_leaving_mid_stream_leak_nothing(
    provider: LiteLLMProvider, upstream: Upstream, store: DumpStore, caplog: pytest.LogCaptureFixture
) -> None:
    total = N_CLIENTS * CALLS_PER_CLIENT
    # Exactly enough upstream slots for the 100: the calls made afterwards get one only
    # if every cancelled call gave its slot back (else they are refused as busy).
    server = mcp_server(
        provider, store, limits=Limits(max_in_flight=total, queue_timeout_s=WAIT / 2)
    )
    # Warm up: litellm builds and caches its HTTP session on first use. Count from after that.
    upstream.script(Reply.text("warm"))
    assert text_of(await call(server, "complete", {"prompt": "warm up"})) == "warm"
    base_tasks, base_fds, base_conns = our_tasks(), open_fds(), upstream.open_connections
    base_dumps = store.count()

    upstream.script(*[Reply.stream(["first ", "never sent"], hold_after=1) for _ in range(total)])
    started = 0
    all_started = anyio.Event()

    def first_text() -> None:
        nonlocal started
        started += 1
        if started == total:
            all_started.set()

    # Half the clients have each call cancelled and stay open; the other half are closed
    # with their calls in flight. Legacy and new-era sessions alternate.
    keep_open = range(0, N_CLIENTS, 2)
    client_scopes = [anyio.CancelScope() for _ in range(N_CLIENTS)]
    call_scopes = [anyio.CancelScope() for _ in range(total)]
    progress = [Progress(first_text) for _ in range(total)]
    returned: list[types.CallToolResult] = []
    afterwards: list[types.CallToolResult] = []
    go_on = anyio.Event()
    one_at_a_time = anyio.Lock()  # so the pool keeps at most one idle connection afterwards

    async def one_call(client: Client, k: int) -> None:
        with call_scopes[k]:
            returned.append(await client.call_tool("stream_complete", {"prompt": f"call {k}"},
                                                   progress_callback=progress[k]))

    async def run_client(i: int) -> None:
        with client_scopes[i]:
            async with Client(server, mode="legacy" if i % 2 else "auto") as client:
                async with anyio.create_task_group() as calls:
                    for j in range(CALLS_PER_CLIENT):
                        calls.start_soon(one_call, client, i * CALLS_PER_CLIENT + j)
                await go_on.wait()
                async with one_at_a_time:
                    afterwards.append(await client.call_tool("complete", {"prompt": "still there?"}))

    async with anyio.create_task_group() as tg:
        for i in range(N_CLIENTS):
            tg.start_soon(run_client, i)
        with anyio.fail_after(30):
            await all_started.wait()
        assert started == total and not returned
        # (one of them may have reused the warm-up's idle keep-alive connection)
        assert upstream.open_connections >= total and upstream.clients_gone == 0
        assert all(p.text == "first " for p in progress)

        for i in range(N_CLIENTS):
            if i in keep_open:
                for j in range(CALLS_PER_CLIENT):
                    call_scopes[i * CALLS_PER_CLIENT + j].cancel()
            else:
                client_scopes[i].cancel()

        # Every upstream stream was abandoned by its client, and every connection closed
        # (promptly: about 0.1 s here; the bound allows for a loaded machine).
        await eventually(lambda: upstream.clients_gone == total, "every held stream saw its client go", CLOSE_S)
        await eventually(lambda: upstream.open_connections <= base_conns, "upstream connections back to baseline",
                         CLOSE_S)
        assert upstream.client_gone.is_set()
        assert not returned  # no cancelled call produced a result
        go_on.set()  # the clients that stayed open make a normal call each

    assert len(afterwards) == len(keep_open)
    assert all(not r.is_error and text_of(r) == "default reply" for r in afterwards), afterwards
    # A new client gets a normal streamed call too.
    upstream.script(Reply.stream(["all ", "well"]))
    fresh = Progress()
    result = await call(server, "stream_complete", {"prompt": "after the storm"}, fresh)
    assert not result.is_error and text_of(result) == "all well" == fresh.text
    # A client going away is not a failed request: no dumps, nothing logged as an error.
    assert store.count() == base_dumps
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

    await eventually(lambda: our_tasks() <= base_tasks, f"asyncio tasks back to {base_tasks} (now {our_tasks()})")
    await eventually(lambda: open_fds() <= base_fds + FD_SLACK,
                     f"open fds back to {base_fds} + {FD_SLACK} (now {open_fds()})")


# ---------------------------------------------------------------------------
# Faults in the server: kill -9 while dumps are being written
# ---------------------------------------------------------------------------

WRITER = r"""
import itertools, sys
from datetime import datetime, timezone
from hive_mcp.dumps import AttemptRecord, DumpStore, FailureDump

store = DumpStore(sys.argv[1], max_count=None, max_bytes=None, max_age=None)
filler = "all work and no play makes a large request " * 5_000  # ~200 KB: each write takes a while
for i in itertools.count():
    now = datetime.now(timezone.utc)
    store.write(FailureDump(
        timestamp=now, model="openai/gpt-4o-mini", error_type="rate_limit", outcome="gave_up",
        attempts=[AttemptRecord(time=now, error_type="rate_limit", status=429, message="slow down")],
        messages=[{"role": "user", "content": f"{i}: " + filler}],
    ))
"""
FILLER_TAIL = "all work and no play makes a large request " * 3
KILLS = 5


def dump_files(d: Path) -> list[Path]:
    return [p for p in d.iterdir() if p.suffix == ".json" and not p.name.startswith(".")] if d.exists() else []


def temp_files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if p.name.startswith(".")} if d.exists() else set()


def kill_mid_write(d: Path, leftovers: set[str]) -> str:
    """Start a writer, let it finish a few dumps, and SIGKILL it while a temp file of its
    exists (between creating the temp file and removing it); return that temp file's name.

    The writer is stopped (SIGSTOP, and waited for) before the temp file is looked for,
    so what is seen is exactly what the kill leaves.
    """
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        want = len(dump_files(d)) + 2
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the writer never got mid-write"
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            if len(dump_files(d)) < want or not temp_files(d) - leftovers:
                time.sleep(0.001)  # poll, leaving the CPU to the writer between looks
                continue
            os.kill(proc.pid, signal.SIGSTOP)
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status)
            mine = temp_files(d) - leftovers
            if mine:
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.wait(timeout=WAIT) == -signal.SIGKILL
                [name] = mine
                return name
            os.kill(proc.pid, signal.SIGCONT)  # it had just finished that file; try again
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        if proc.stderr:
            proc.stderr.close()


def test_kill_9_while_writing_dumps_leaves_only_whole_dumps(tmp_path: Path) -> None:
    d = tmp_path / "dumps"
    leftovers: set[str] = set()
    for _ in range(KILLS):
        leftovers.add(kill_mid_write(d, leftovers))
    assert len(leftovers) == KILLS and temp_files(d) == leftovers

    # No partial file under a real dump name: every one parses as a whole dump.
    files = dump_files(d)
    assert len(files) >= 2 * KILLS
    for path in files:
        dump = FailureDump.model_validate_json(path.read_bytes())
        assert dump.id == path.stem and dump.messages[0]["content"].endswith(FILLER_TAIL)

    # The store lists every complete dump, reads each, and never lists a temp file.
    store = DumpStore(d, max_count=None, max_bytes=None, max_age=None)
    listed: list[str] = []
    cursor = None
    for _ in range(len(files)):  # bounded: a cursor that never advances fails, not hangs
        page = store.list(limit=7, cursor=cursor)
        listed += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert sorted(listed) == sorted(p.stem for p in files) and len(listed) == len(set(listed))
    assert not {f"{dump_id}.json" for dump_id in listed} & leftovers
    assert store.count() == len(files)
    for dump_id in listed:
        assert store.read(dump_id).id == dump_id

    # Life goes on: a new write works, and once stale the leftovers are cleaned up.
    store.write(FailureDump.model_validate_json(files[0].read_bytes()).model_copy(update={"id": ""}))
    assert store.count() == len(files) + 1 and temp_files(d) == leftovers
    stale = time.time() - 2 * 3600
    for name in leftovers:
        os.utime(d / name, (stale, stale))
    store.prune()
    assert temp_files(d) == set() and store.count() == len(files) + 1
