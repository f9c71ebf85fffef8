"""SIGTERM with calls in flight, against `python -m hive_mcp --transport http|sse` as a subprocess.

The calls that can finish do, with their full text; the one whose upstream
hangs is answered with an error once the grace period is over; the process
exits 0 soon after. The servers are started together (each one imports
litellm); each test stops its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError

from tests.servers import TOOLS, HttpServer, Session, authed_target, exited_cleanly, server_env, wait_exit
from tests.clients import text_of
from harness.upstream import Reply, Upstream

GRACE_S = 4.0
CALLS = 20
SIGTERM_TOKEN = "tok-sigterm-0123456789abcdef"
SIGTERM_CASES = [("http", "legacy"), ("http", "auto"), ("sse", "legacy")]


@pytest.fixture(scope="module")
def sigterm_servers(sec_upstream: Upstream, workdir: Path) -> Iterator[dict[tuple[str, str], HttpServer]]:
    """A server for each case, started together (each one imports litellm); each test stops its own."""
    servers = {}
    for transport, mode in SIGTERM_CASES:
        env = server_env(sec_upstream, workdir / f"dumps-sigterm-{transport}", api_key=True)
        env.update(
            HIVE_MCP_AUTH_TOKEN=SIGTERM_TOKEN, HIVE_MCP_SHUTDOWN_GRACE_S=str(GRACE_S), HIVE_MCP_LOG_LEVEL="DEBUG"
        )
        servers[(transport, mode)] = HttpServer(transport, env, workdir, f"sigterm-{transport}-{mode}")
    try:
        yield servers
    finally:
        for server in servers.values():
            server.terminate()


@pytest.mark.parametrize(("transport", "mode"), SIGTERM_CASES, ids=["http-legacy", "http-auto", "sse"])
def test_sigterm_lets_calls_in_flight_finish_answers_the_rest_and_exits_0(
    transport: str, mode: str, sec_upstream: Upstream, sigterm_servers: dict[tuple[str, str], HttpServer]
) -> None:
    """20 stream_complete calls in flight; SIGTERM; then the upstream lets 19 finish and one hangs.

    The 19 must end with their full text, the hung one with a clear error once
    the grace period is over, and the process must exit 0 soon after.
    """
    server = sigterm_servers[(transport, mode)]
    session: Session | None = None
    sec_upstream.unscript()  # nothing left over from another test
    sec_upstream.script(*[Reply.stream(["first half, ", "second half"], hold_after=1)] * (CALLS - 1), Reply.hang())
    try:
        server.wait_loaded()  # the calls are bounded as calls, not as litellm's import
        session = Session(authed_target(server, SIGTERM_TOKEN), mode)  # legacy http: with a standing GET stream
        before = len(sec_upstream.chat_requests())

        async def go(c: Client) -> tuple[list[Any], float, float]:
            outcomes: list[Any] = [None] * CALLS
            started = [anyio.Event() for _ in range(CALLS)]
            # The client checks each result against the tool's output schema, and lists the
            # tools to learn it if it has not yet: done now, as no new request can reach a
            # server that is shutting down (its listening socket is closed).
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS

            async def one(i: int) -> None:
                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        started[i].set()

                try:
                    outcomes[i] = await c.call_tool("stream_complete", {"prompt": f"call {i}"},
                                                    progress_callback=on_progress)
                except MCPError as exc:
                    outcomes[i] = exc

            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(one, i)
                # Every call is in flight: all 20 reached the upstream, and the 19 streams
                # have sent their first chunk (so each is held, waiting for release()).
                with anyio.fail_after(60):
                    while (
                        len(sec_upstream.chat_requests()) - before < CALLS
                        or sum(e.is_set() for e in started) < CALLS - 1
                    ):
                        await anyio.sleep(0.02)  # polling counters: no single event covers 20 calls
                signalled = time.monotonic()
                server.signal_stop()
                # Released once the server has counted its calls in flight: released sooner, a
                # stream could finish between the signal and the count.
                with anyio.fail_after(30):
                    while "shutting down:" not in server.stderr():
                        await anyio.sleep(0.02)  # the server's log is the only sign: polled
                sec_upstream.release()
            return outcomes, signalled, time.monotonic()

        outcomes, signalled, all_ended = session.run(go, timeout=60 + GRACE_S + 30)
        rc = wait_exit(server.proc, GRACE_S + 20)
        exited = time.monotonic()
    finally:
        server.terminate()  # at once if it has exited; the log files are closed
        if session is not None:
            session.close()  # the server is gone: whatever closing raises is expected
    log = exited_cleanly(server, rc)

    finished = [o for o in outcomes if not isinstance(o, MCPError)]
    failed = [o for o in outcomes if isinstance(o, MCPError)]
    assert len(finished) == CALLS - 1, outcomes
    for result in finished:
        assert not result.is_error, text_of(result)
        assert text_of(result) == "first half, second half"
    assert len(failed) == 1, outcomes
    assert "shut down" in str(failed[0]) and "grace period" in str(failed[0]), failed[0]
    # The hung call was answered once the grace period was over, not before and not much later.
    assert GRACE_S - 0.5 <= all_ended - signalled <= GRACE_S + 10, all_ended - signalled
    assert exited - signalled <= GRACE_S + 15, exited - signalled
    assert f"shutting down: {CALLS} call(s) in flight" in log
    assert "over: 1 call(s) answered with an error" in log
