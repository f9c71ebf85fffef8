"""End to end: a real MCP client against `python -m hive_mcp` running as a subprocess.

Every scenario runs over stdio, streamable HTTP and the legacy HTTP+SSE transport,
in both protocol eras (`mode="legacy"`: the 2025-11-25 initialize handshake;
`mode="auto"`: the 2026-07-28 stateless era, which the SDK serves on all three):
the tools listed and called, streamed progress, failure dumps, a cancelled
stream, and a server without an API key. The server's upstream is the scripted
fake in harness/upstream.py. The process itself, driven by hand (stdout, end of
input, signals), is tested in tests/test_e2e_process.py.

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
import re
import sys
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
from tests.conftest_subprocess import dump_dir_for
from tests.servers import TOOLS, HttpServer, Session, dump_id_in, server_env, wait_provider_loaded
from tests.clients import text_of, wait_thread_event
from harness.upstream import Reply, Upstream

pytestmark = pytest.mark.usefixtures("fresh_upstream")

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
            server.wait_loaded()  # the tests' calls are bounded as calls, not as litellm's import
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
                s.wait_loaded()  # the tests' calls are bounded as calls, not as litellm's import
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
        make_target = request.getfixturevalue("http_servers")[(transport, False)].client_target  # loaded
    before = len(e2e_upstream.chat_requests())

    async def go(c: Client) -> tuple[set[str], Any, Any]:
        tools = {t.name for t in (await c.list_tools()).tools}
        plain = await c.call_tool("complete", {"prompt": "hello?"})
        streamed = await c.call_tool("stream_complete", {"prompt": "hello?"})
        return tools, plain, streamed

    s = Session(make_target, mode)
    try:
        if errlog is not None:  # the calls are bounded as calls, not as litellm's import
            wait_provider_loaded(errlog_path.read_text)
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
