"""`--workers N`: several processes on one port, stateless streamable HTTP, both protocol eras, SIGTERM drain.

Requests are spread over the workers by giving each HTTP request a new
connection (the workers share one listening socket); the test hook
HIVE_MCP_TEST_HOOKS=worker-pid makes every response name the worker that
answered it, so each test can show its requests did land on different workers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from hive_mcp.cli import main
from hive_mcp.http.workers import WORKER_HEADER
from hive_mcp.scaling import max_workers
from tests.servers import STARTUP_S, TOOLS, HttpServer, Session, server_env, text_of, wait_exit
from tests.upstream import RecordedRequest, Reply, Upstream

STREAMED = ["one, ", "two, ", "three"]


class Seen:
    """Which worker answered which JSON-RPC method, from the response header the test hook adds."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int]] = []

    async def record(self, response: httpx2.Response) -> None:
        pid = response.headers.get(WORKER_HEADER.decode())
        if pid is None or response.request.method != "POST":
            return
        try:
            body = json.loads(response.request.content)
        except ValueError:
            return
        method = body.get("method", "?") if isinstance(body, dict) else "batch"
        self.answers.append((method, int(pid)))

    def pids(self, method: str | None = None) -> set[int]:
        return {pid for m, pid in self.answers if method is None or m == method}


def spread_target(url: str, seen: Seen) -> Callable[[], Any]:
    """A streamable HTTP client transport that opens a new connection for every request."""

    @asynccontextmanager
    async def target() -> AsyncIterator[Any]:
        limits = httpx2.Limits(max_keepalive_connections=0)
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(limits=limits, timeout=timeout, event_hooks={"response": [seen.record]}) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams

    return target


def _reply(request: RecordedRequest) -> Reply:
    if isinstance(request.body, dict) and request.body.get("stream"):
        return Reply.stream(STREAMED)
    return Reply.text("a whole reply")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream(reply_for=_reply) as up:
        yield up


def workers_env(upstream: Upstream, dump_dir: Path) -> dict[str, str]:
    env = server_env(upstream, dump_dir, api_key=True)
    env["HIVE_MCP_TEST_HOOKS"] = "worker-pid"
    return env


@pytest.fixture(scope="module")
def two_workers(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    workdir = tmp_path_factory.mktemp("workers")
    server = HttpServer("http", workers_env(upstream, workdir / "dumps"), workdir, "workers", args=["--workers", "2"])
    try:
        server.wait_ready()
        wait_loaded(server)
        yield server
    finally:
        rc = server.terminate()
    assert rc == 0, server.stderr()


def wait_loaded(server: HttpServer, workers: int = 2, bound_s: float = STARTUP_S) -> None:
    """Until every worker has loaded litellm (a worker still importing it is slow to accept connections)."""
    deadline = time.monotonic() + bound_s
    while server.stderr().count(": provider loaded") < workers:
        assert server.proc.poll() is None, server.stderr()
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.1)  # polling a log file: there is no event to wait on


# ---------------------------------------------------------------------------
# Bad values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "-1"], {}, "--workers"),
        (["--workers", "two"], {}, "--workers"),
        ([], {"HIVE_MCP_WORKERS": "many"}, "HIVE_MCP_WORKERS"),
        (["--workers", str(max_workers() + 1)], {}, "--force"),
        (["--transport", "sse", "--workers", "2"], {}, "stateless"),
        (["--transport", "sse", "--stateless"], {}, "--stateless"),
        (["--transport", "stdio", "--workers", "2"], {}, "--transport http"),
    ],
    ids=["zero", "negative", "not-a-number", "env-not-a-number", "too-many", "sse", "sse-stateless", "stdio"],
)
def test_bad_worker_settings_are_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], names: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # no .env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    transport = [] if "--transport" in argv else ["--transport", "http"]
    assert main([*transport, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hive-mcp: error: ") and names in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------
# Both protocol eras, their requests on different workers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_client_gets_the_same_results_whichever_worker_answers(two_workers: HttpServer, mode: str) -> None:
    """initialize (legacy) on one worker, then tools/call, resources/read and stream_complete on others."""
    seen = Seen()
    session = Session(spread_target(two_workers.url, seen), mode)
    try:

        async def calls(c: Client) -> None:
            assert {t.name for t in (await c.list_tools()).tools} >= TOOLS
            for _ in range(40):  # each request is a new connection: until both workers answered calls
                progress: list[str] = []

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        progress.append(message)

                streamed = await c.call_tool("stream_complete", {"prompt": "count"}, progress_callback=on_progress)
                assert not streamed.is_error and text_of(streamed) == "one, two, three"
                assert "three" in "".join(progress), progress  # the text came as progress too
                whole = await c.call_tool("complete", {"prompt": "hi"})
                assert not whole.is_error and text_of(whole) == "a whole reply"
                index = await c.read_resource("hive://failed-requests")
                assert index.contents
                if len(seen.pids("tools/call")) == 2 and len(seen.pids("resources/read")) == 2:
                    return

        session.run(calls, timeout=120)
    finally:
        session.close()
    assert len(seen.pids("tools/call")) == 2, seen.answers
    assert len(seen.pids("resources/read")) == 2, seen.answers
    if mode == "legacy":
        (initialized,) = seen.pids("initialize")
        assert seen.pids("tools/call") - {initialized}, "no call landed on a worker other than initialize's"


# ---------------------------------------------------------------------------
# SIGTERM to the parent drains every worker
# ---------------------------------------------------------------------------

MAX_CALLS = 30


def test_sigterm_lets_every_workers_calls_finish_and_exits_0(tmp_path: Path) -> None:
    held = Upstream(reply_for=lambda r: Reply.stream(["first half, ", "second half"], hold_after=1))
    with held:
        server = HttpServer(
            "http", workers_env(held, tmp_path / "dumps"), tmp_path, "drain", args=["--workers", "2"]
        )
        seen = Seen()
        session: Session | None = None
        try:
            server.wait_ready()
            wait_loaded(server)
            session = Session(spread_target(server.url, seen), "legacy")

            async def go(c: Client) -> list[Any]:
                outcomes: list[Any] = []
                assert {t.name for t in (await c.list_tools()).tools} >= TOOLS

                async def one(started: anyio.Event) -> None:
                    async def on_progress(value: float, total: float | None, message: str | None) -> None:
                        if message:
                            started.set()

                    try:
                        outcomes.append(await c.call_tool("stream_complete", {"prompt": "go"}, progress_callback=on_progress))
                    except MCPError as exc:
                        outcomes.append(exc)

                async with anyio.create_task_group() as tg:
                    # Calls one after another (each on a new connection) until both workers hold some.
                    for _ in range(MAX_CALLS):
                        started = anyio.Event()
                        tg.start_soon(one, started)
                        with anyio.fail_after(60):
                            await started.wait()  # its stream has sent its first text and is held
                        if len(seen.pids("tools/call")) == 2:
                            break
                    server.signal_stop()
                    held.release()
                return outcomes

            outcomes = session.run(go, timeout=90)
            rc = wait_exit(server.proc, 30)
        finally:
            server.terminate()
            if session is not None:
                session.close()
    log = server.stderr()
    assert rc == 0, log
    assert "Traceback" not in log, log
    for outcome in outcomes:
        assert not isinstance(outcome, MCPError), outcome
        assert not outcome.is_error and text_of(outcome) == "first half, second half"
    assert len(seen.pids("tools/call")) == 2, seen.answers  # both workers had calls in flight
    assert log.count("shutting down:") == 2, log  # each worker drained

