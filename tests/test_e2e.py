"""End to end: a real MCP client against `python -m hive_mcp` running as a subprocess.

Every scenario runs over stdio, streamable HTTP and the legacy HTTP+SSE transport,
in both protocol eras (`mode="legacy"`: the 2025-11-25 initialize handshake;
`mode="auto"`: the 2026-07-28 stateless era, which the SDK serves on all three).
The server's upstream is the scripted fake in harness/upstream.py.

Cost: each server process imports litellm (seconds), so a server is started once
per transport (HTTP) or once per client session (stdio: the client owns the
process), and sessions are shared by the tests of one module. A session lives
on its own event-loop thread, so the tests are plain functions that hand it
coroutines: an anyio task group cannot be opened in one pytest-asyncio fixture
task and closed in another.

Waiting is always on an event or on readiness, with a deadline; never a bare sleep.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from tests.conftest import MODEL, TEST_KEY
from tests.servers import (
    EXIT_S,
    STARTUP_S,
    TOOLS,
    HttpServer,
    Session,
    dump_id_in,
    server_env,
    wait_exit,
)
from tests.clients import text_of, wait_thread_event
from harness.processes import INITIALIZE
from harness.upstream import Reply, Upstream

# ---------------------------------------------------------------------------
# Helpers: environment, processes, sessions
# ---------------------------------------------------------------------------


def stdio_target(env: dict[str, str], workdir: Path, errlog: IO[str]) -> Callable[[], Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "hive_mcp"], env=env, cwd=str(workdir))
    return lambda: stdio_client(params, errlog=errlog)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

COMBOS = [(t, m) for t in ("stdio", "http", "sse") for m in ("legacy", "auto")]
IDS = [f"{t}-{m}" for t, m in COMBOS]


@pytest.fixture(scope="module")
def e2e_upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(autouse=True)
def fresh_upstream(request: pytest.FixtureRequest) -> None:
    """Tests share one upstream: start each with an empty script and cleared events."""
    if "e2e_upstream" not in request.fixturenames:
        return
    up: Upstream = request.getfixturevalue("e2e_upstream")
    with up._lock:  # a failed test must not leave replies for the next one
        up._script.clear()
    up.chunk_sent.clear()
    up.client_gone.clear()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def dump_dir_for(workdir: Path, transport: str) -> Path:
    return workdir / f"dumps-{transport}"


@pytest.fixture(scope="module")
def http_servers(e2e_upstream: Upstream, workdir: Path) -> Iterator[dict[tuple[str, bool], HttpServer]]:
    """http and sse servers, with and without an API key: started together, checked for a clean SIGTERM exit."""
    servers = {
        (transport, key): HttpServer(
            transport,
            server_env(e2e_upstream, dump_dir_for(workdir, transport), api_key=key),
            workdir,
            f"{transport}-{'key' if key else 'nokey'}",
        )
        for transport in ("http", "sse")
        for key in (True, False)
    }
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        problems = []
        for server in servers.values():
            server.signal_stop()  # all at once: each takes a moment to wind down
        for (transport, key), server in servers.items():
            rc = server.terminate()
            err = server.stderr()
            if rc != 0 or "Traceback" in err:
                problems.append(f"{transport} (key={key}) exited with {rc} on SIGTERM:\n{err[-3000:]}")
        assert not problems, "\n\n".join(problems)


@pytest.fixture(scope="module", params=COMBOS, ids=IDS)
def session(request: pytest.FixtureRequest, e2e_upstream: Upstream, workdir: Path) -> Iterator[Session]:
    """A client session with a keyed server, shared by the module's tests for one transport and mode."""
    transport, mode = request.param
    if transport == "stdio":
        errlog_path = workdir / f"stdio-{mode}.stderr.log"
        with open(errlog_path, "w+") as errlog:
            dump_dir = dump_dir_for(workdir, "stdio")
            env = server_env(e2e_upstream, dump_dir, api_key=True)
            target = stdio_target(env, workdir, errlog)
            s = Session(target, mode, transport="stdio", dump_dir=dump_dir, read_stderr=errlog_path.read_text)
            try:
                yield s
            finally:
                s.close()
        return
    server = request.getfixturevalue("http_servers")[(transport, True)]
    dump_dir = dump_dir_for(workdir, transport)
    s = Session(server.client_target, mode, transport=transport, dump_dir=dump_dir, read_stderr=server.stderr)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def no_transport_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test did, the client must not have seen a malformed message (e.g. a log line on stdout)."""
    yield
    if "session" in request.fixturenames:
        s: Session = request.getfixturevalue("session")
        assert s.faults == [], f"the client saw transport faults: {s.faults!r}"


# ---------------------------------------------------------------------------
# Scenarios, over every transport and era
# ---------------------------------------------------------------------------


def test_lists_the_three_tools(session: Session) -> None:
    async def go(c: Client) -> set[str]:
        return {t.name for t in (await c.list_tools()).tools}

    assert session.run(go) == TOOLS


def test_the_session_speaks_the_era_asked_for(session: Session) -> None:
    assert session.client is not None
    version = session.client.protocol_version
    if session.mode == "legacy":
        assert version in HANDSHAKE_PROTOCOL_VERSIONS
    else:  # auto must not have fallen back to the handshake: the server speaks the new era too
        assert version in MODERN_PROTOCOL_VERSIONS


def test_startup_is_logged_to_stderr(session: Session) -> None:
    where = {"stdio": "over stdio", "http": "over streamable HTTP", "sse": "over HTTP+SSE"}[session.transport]
    err = session.read_stderr()
    assert f"serving MCP {where}" in err
    assert f"model {MODEL}" in err
    assert TEST_KEY not in err
    if session.transport != "stdio":  # the page a newcomer opens next, named where they look
        assert re.search(r"dashboard at http://127\.0\.0\.1:\d+/dashboard\b", err), err


def test_complete_returns_the_upstream_text(session: Session, e2e_upstream: Upstream) -> None:
    e2e_upstream.script(Reply.text("hello from upstream"))
    prompt = f"say hello {uuid.uuid4().hex}"
    before = len(e2e_upstream.chat_requests())

    async def go(c: Client) -> Any:
        return await c.call_tool("complete", {"prompt": prompt})

    result = session.run(go)
    assert not result.is_error, text_of(result)
    assert text_of(result) == "hello from upstream"
    assert result.structured_content["content"] == "hello from upstream"
    assert result.structured_content["model"]
    sent = e2e_upstream.chat_requests()[before:]
    assert len(sent) == 1
    assert sent[0].messages[-1]["content"] == prompt
    assert sent[0].body["model"] == "gpt-4o-mini"
    assert sent[0].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_stream_complete_delivers_progress_incrementally(session: Session, e2e_upstream: Upstream) -> None:
    final = "Hello, streaming world!"
    # The upstream sends two chunks, then holds until released; it is released
    # only once the first progress notification has reached the client.
    e2e_upstream.script(Reply.stream(["Hello", ", ", "streaming ", "world", "!"], hold_after=2))

    async def go(c: Client) -> tuple[Any, str, list[str], list[float]]:
        messages: list[str] = []
        progress: list[float] = []
        first = anyio.Event()

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)
            if message is not None:
                messages.append(message)
                first.set()

        box: dict[str, Any] = {}

        async def call() -> None:
            args = {"prompt": "stream please"}
            box["result"] = await c.call_tool("stream_complete", args, progress_callback=on_progress)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await first.wait()  # deadlocks (and times out) if the server buffered the stream
            before_release = "".join(messages)
            e2e_upstream.release()
        return box["result"], before_release, messages, progress

    result, before_release, messages, progress = session.run(go)
    assert not result.is_error, text_of(result)
    assert text_of(result) == final
    assert before_release and final.startswith(before_release) and len(before_release) <= len("Hello, ")
    assert "".join(messages) == final
    assert progress == sorted(progress) and len(set(progress)) == len(progress)


def test_failed_call_is_dumped_listed_and_readable(session: Session, e2e_upstream: Upstream) -> None:
    prompt = f"this will fail {uuid.uuid4().hex}"
    e2e_upstream.script(Reply.error(500, "upstream exploded"))
    before = len(e2e_upstream.chat_requests())

    async def go(c: Client) -> tuple[Any, Any, Any, Any]:
        failed = await c.call_tool("complete", {"prompt": prompt, "max_retries": 0})
        dump_id = dump_id_in(text_of(failed))
        listing = await c.call_tool("list_failed_requests", {"limit": 200})
        one = await c.read_resource(f"hive://failed-requests/{dump_id}")
        index = await c.read_resource("hive://failed-requests")
        return failed, listing, one, index

    failed, listing, one, index = session.run(go)
    assert failed.is_error
    assert len(e2e_upstream.chat_requests()) == before + 1  # max_retries=0: exactly one upstream hit
    dump_id = dump_id_in(text_of(failed))
    assert session.dump_dir is not None and (session.dump_dir / f"{dump_id}.json").is_file()

    assert not listing.is_error
    items = {i["id"]: i for i in listing.structured_content["items"]}
    assert dump_id in items
    assert items[dump_id]["uri"] == f"hive://failed-requests/{dump_id}"
    assert items[dump_id]["model"] == MODEL

    text = one.contents[0].text
    dump = json.loads(text)
    assert dump["id"] == dump_id
    assert any(m.get("content") == prompt for m in dump["messages"])
    assert [a["status"] for a in dump["attempts"]] == [500]
    assert TEST_KEY not in text

    assert dump_id in index.contents[0].text


def test_cancelling_a_stream_closes_the_upstream_and_the_server_keeps_serving(
    session: Session, e2e_upstream: Upstream
) -> None:
    e2e_upstream.script(Reply.stream(["first ", "second ", "third"], hold_after=1))

    async def go(c: Client) -> tuple[bool, Any]:
        first = anyio.Event()

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            if message:
                first.set()

        async with anyio.create_task_group() as tg:
            args = {"prompt": "long story"}
            tg.start_soon(lambda: c.call_tool("stream_complete", args, progress_callback=on_progress))
            await first.wait()
            tg.cancel_scope.cancel()
        gone = await wait_thread_event(e2e_upstream.client_gone, 20)
        e2e_upstream.script(Reply.text("still serving"))
        after = await c.call_tool("complete", {"prompt": "are you there?"})
        return gone, after

    gone, after = session.run(go, timeout=45)
    assert gone, "the server did not close its upstream connection after the call was cancelled"
    assert not after.is_error, text_of(after)
    assert text_of(after) == "still serving"


# ---------------------------------------------------------------------------
# No API key at all
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("transport", "mode"), COMBOS, ids=IDS)
def test_without_an_api_key_it_serves_and_names_the_variable(
    transport: str, mode: str, e2e_upstream: Upstream, workdir: Path, request: pytest.FixtureRequest
) -> None:
    if transport == "stdio":
        errlog_path = workdir / f"stdio-nokey-{mode}.stderr.log"
        errlog = open(errlog_path, "w+")  # noqa: SIM115 - closed below
        env = server_env(e2e_upstream, dump_dir_for(workdir, "stdio"), api_key=False)
        assert not any(k.endswith("_API_KEY") for k in env)
        make_target = stdio_target(env, workdir, errlog)
    else:
        errlog = None
        make_target = request.getfixturevalue("http_servers")[(transport, False)].client_target
    before = len(e2e_upstream.chat_requests())

    async def go(c: Client) -> tuple[set[str], Any, Any]:
        tools = {t.name for t in (await c.list_tools()).tools}
        plain = await c.call_tool("complete", {"prompt": "hello?"})
        streamed = await c.call_tool("stream_complete", {"prompt": "hello?"})
        return tools, plain, streamed

    s = Session(make_target, mode)
    try:
        tools, plain, streamed = s.run(go)
        assert s.faults == []
    finally:
        s.close()
        if errlog is not None:
            errlog.close()
    assert tools == TOOLS
    for result in (plain, streamed):
        assert result.is_error
        assert "no API key configured" in text_of(result)
        assert "OPENAI_API_KEY" in text_of(result) and "HIVE_MCP_API_KEY" in text_of(result)
    assert len(e2e_upstream.chat_requests()) == before  # refused before any request


# ---------------------------------------------------------------------------
# Process behaviour: stdout purity, signals
# ---------------------------------------------------------------------------


class _Lines:
    """Lines of a pipe, read by a thread, so a test can wait on them with a deadline."""

    def __init__(self, pipe: IO[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, timeout: float = STARTUP_S) -> str | None:
        line = self.queue.get(timeout=timeout)
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, predicate: Callable[[str], bool], timeout: float = STARTUP_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("the stream ended first:\n" + "".join(self.seen))
            if predicate(line):
                return line

    def rest(self, timeout: float = EXIT_S) -> str:
        self._thread.join(timeout)
        while True:
            try:
                line = self.queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


def spawn_stdio(e2e_upstream: Upstream, workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hive_mcp", "--log-level", "INFO"],
        env=server_env(e2e_upstream, dump_dir_for(workdir, "stdio"), api_key=True),
        cwd=workdir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def test_requests_piped_in_before_the_end_of_input_are_answered(e2e_upstream: Upstream, workdir: Path) -> None:
    """`cat requests.jsonl | hive-mcp`: what can be answered at once is, before the end of input stops the server
    (the SDK cancels what is still in flight at end of input)."""
    requests = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
    ]
    done = subprocess.run(
        [sys.executable, "-m", "hive_mcp"],
        input="".join(json.dumps(r) + "\n" for r in requests),
        env=server_env(e2e_upstream, dump_dir_for(workdir, "stdio"), api_key=True),
        cwd=workdir, capture_output=True, text=True, timeout=STARTUP_S + EXIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answered = {json.loads(line)["id"] for line in done.stdout.splitlines() if "id" in json.loads(line)}
    assert answered == {1, 2, 3}, done.stdout


def test_stdio_stdout_carries_only_protocol_and_eof_exits_cleanly(e2e_upstream: Upstream, workdir: Path) -> None:
    e2e_upstream.script(Reply.text("raw reply"), Reply.error(401, "bad key"))
    proc = spawn_stdio(e2e_upstream, workdir)
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        send(proc, INITIALIZE)
        send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        replies: dict[int, dict[str, Any]] = {}

        def reply_to(request_id: int) -> dict[str, Any]:
            while request_id not in replies:
                line = out.next()
                assert line is not None, "stdout closed early; stderr:\n" + err.rest()
                message = json.loads(line)  # every stdout line is one JSON-RPC message
                assert message.get("jsonrpc") == "2.0", line
                if "id" in message:
                    replies[message["id"]] = message
            return replies[request_id]

        call = {"name": "complete", "arguments": {"prompt": "raw"}}
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
        reply_to(3)  # one at a time: the upstream's replies are scripted in order
        # A failure makes the provider log and write a dump: still nothing on stdout but protocol.
        call = {"name": "complete", "arguments": {"prompt": "fail", "max_retries": 0}}
        send(proc, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": call})
        reply_to(4)
        reply_to(2)
        assert {t["name"] for t in replies[2]["result"]["tools"]} == TOOLS
        assert replies[3]["result"]["content"][0]["text"] == "raw reply"
        assert replies[4]["result"]["isError"] is True
        proc.stdin.close()  # end of input: the server exits on its own
        rc = wait_exit(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.rest().splitlines():
        assert json.loads(line).get("jsonrpc") == "2.0", line
    log = err.rest()
    assert rc == 0, log
    assert "serving MCP over stdio" in log and "hive_mcp" in log
    assert "Traceback" not in log
    assert TEST_KEY not in log


def _a_thread_other_than_main(pid: int) -> int:
    """The id of one of `pid`'s threads that is not its main thread (Linux: /proc/PID/task)."""
    others = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
    assert others, "the server runs no thread besides the main one"
    return others[0]


@pytest.mark.parametrize("to", ["process", "thread"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stdio_signal_exits_cleanly(sig: signal.Signals, to: str, e2e_upstream: Upstream, workdir: Path) -> None:
    """Also when the kernel hands the signal to a thread other than the main one (as it may under load:
    kill(2) of a thread's id delivers the process's signal to that thread): the main thread, idle in
    its event loop's select, must still be woken to run the handler."""
    if to == "thread" and not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc/PID/task to find a thread other than the main one")
    proc = spawn_stdio(e2e_upstream, workdir)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        send(proc, INITIALIZE)
        out.until(lambda line: '"id":1' in line.replace(" ", ""))  # serving: the handshake was answered
        os.kill(proc.pid if to == "process" else _a_thread_other_than_main(proc.pid), sig)
        rc = wait_exit(proc)  # stdin is still open: the signal alone must end it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdin:
            proc.stdin.close()
    log = err.rest()
    assert rc == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert "hive-mcp stopped" in log


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_http_sigterm_with_a_client_connected_exits_cleanly(
    transport: str, e2e_upstream: Upstream, workdir: Path
) -> None:
    # A grace period longer than wait_exit's patience: an idle stream must not hold the exit for it.
    env = server_env(e2e_upstream, dump_dir_for(workdir, transport), api_key=True)
    env["HIVE_MCP_SHUTDOWN_GRACE_S"] = "60"
    server = HttpServer(transport, env, workdir, f"{transport}-sigterm")
    session: Session | None = None
    try:
        server.wait_ready()
        session = Session(server.client_target, "legacy")  # holds a standing GET stream open

        async def go(c: Client) -> set[str]:
            return {t.name for t in (await c.list_tools()).tools}

        assert session.run(go) == TOOLS
        rc = server.terminate()
    finally:
        if server.returncode is None:
            server.terminate()
        if session is not None:
            session.close()  # the server is gone: whatever closing raises is expected
    err = server.stderr()
    assert rc == 0, err
    assert "Traceback" not in err
    assert " ERROR " not in err, err  # e.g. uvicorn's "ASGI callable returned without completing response"
    assert "hive-mcp stopped" in err
