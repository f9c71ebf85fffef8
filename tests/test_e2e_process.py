"""End to end: the server process itself, `python -m hive_mcp` run as a subprocess and driven by hand.

Over stdio: stdout carries nothing but protocol, requests piped in before the
end of input are answered, and the end of input, SIGTERM and SIGINT (sent to
the process or to one of its threads) end it cleanly; over HTTP and HTTP+SSE,
SIGTERM ends it cleanly with a client connected. Each test starts its own
process; the upstream is the module's scripted fake (harness/upstream.py).

Waiting is always on an event or on readiness, with a deadline; never a bare sleep.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from mcp import Client

from tests.conftest import TEST_KEY
from tests.conftest_subprocess import dump_dir_for
from tests.servers import EXIT_S, STARTUP_S, TOOLS, HttpServer, Session, server_env, wait_exit
from harness.processes import INITIALIZE, ask_stdio
from harness.upstream import Reply, Upstream

pytestmark = pytest.mark.usefixtures("fresh_upstream")


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
        server.wait_loaded()  # a loaded server is stopped (one stopped mid-load: test_deferred)
        session = Session(server.client_target, "legacy")  # holds a standing GET stream open

        async def go(c: Client) -> set[str]:
            return {t.name for t in (await c.list_tools()).tools}

        assert session.run(go) == TOOLS
    finally:
        rc = server.terminate()
        if session is not None:
            session.close()  # the server is gone: whatever closing raises is expected
    err = server.stderr()
    assert rc == 0, err
    assert "Traceback" not in err
    assert " ERROR " not in err, err  # e.g. uvicorn's "ASGI callable returned without completing response"
    assert "hive-mcp stopped" in err


def one_complete(server: HttpServer, mode: str, prompt: str) -> tuple[str, int, str]:
    """One `complete` of `prompt` on `server`, started here and stopped after: its answer's text, the server's exit
    code and its log."""
    session: Session | None = None
    try:
        server.wait_loaded()  # the call is bounded as a call, not as litellm's import
        session = Session(server.client_target, mode)
        result = session.run(lambda c: c.call_tool("complete", {"prompt": prompt}))
    finally:
        if session is not None:
            session.close()
        rc = server.terminate()
    return result.content[0].text, rc, server.stderr()


def test_http_at_debug_writes_nothing_to_stdout_not_even_during_litellms_import(
    e2e_upstream: Upstream, workdir: Path
) -> None:
    """litellm's import gives its loggers a handler writing records below WARNING to stdout, and logs through
    it at DEBUG: those lines go to stderr, once, as every other log line does."""
    env = server_env(e2e_upstream, dump_dir_for(workdir, "http"), api_key=True)
    env["HIVE_MCP_LOG_LEVEL"] = "DEBUG"
    env["LITELLM_LOG"] = "DEBUG"  # litellm's own debug lines asked for: they too go to stderr
    e2e_upstream.script(Reply.text("loaded and answered"))
    text, rc, err = one_complete(HttpServer("http", env, workdir, "http-debug"), "legacy", "hi")
    assert text == "loaded and answered"  # answered once litellm is in
    assert rc == 0, err
    assert " DEBUG LiteLLM: " in err  # litellm did log, through our handler
    assert (workdir / "http-debug.stdout.log").read_text() == ""


PROMPT = "zebra-prompt-4417"
ANSWER = "okapi-answer-9031"


@pytest.mark.parametrize(("transport", "mode"), [("stdio", ""), ("http", "auto"), ("http", "legacy"), ("sse", "legacy")])
def test_at_debug_no_caller_message_reaches_the_log(
    transport: str, mode: str, e2e_upstream: Upstream, workdir: Path
) -> None:
    """`--log-level DEBUG` shows the server's workings, never a caller's data: the SDK's legacy SSE transport logs
    every message POSTed to it and every one it sends, its dispatcher a message it cannot read with pydantic's
    report quoting it, sse-starlette every event it sends, and litellm (at DEBUG) the request it sends upstream
    and the reply. None of a prompt nor of its answer is in the log; litellm's own DEBUG lines come only with
    LITELLM_LOG=DEBUG."""
    e2e_upstream.script(Reply.text(ANSWER))
    env = server_env(e2e_upstream, dump_dir_for(workdir, f"debug-{transport}"), api_key=True)
    env.pop("LITELLM_LOG", None)
    unreadable = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": PROMPT}  # no object: unread
    if transport == "stdio":
        lines = [INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}, unreadable,
                 {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "complete", "arguments": {"prompt": PROMPT}}}]  # fmt: skip
        replies, code, err = ask_stdio(
            [sys.executable, "-m", "hive_mcp", "--log-level", "DEBUG"], [json.dumps(line) for line in lines], {1, 2},
            env=env, cwd=workdir, timeout=STARTUP_S,
        )  # fmt: skip
        assert code == 0, err
        assert replies[2]["result"]["content"][0]["text"] == ANSWER, replies[2]
    else:
        server = HttpServer(transport, env, workdir, f"debug-{transport}-{mode}", args=["--log-level", "DEBUG"])
        text, rc, err = one_complete(server, mode, PROMPT)
        assert text == ANSWER
        assert rc == 0, err
    assert " DEBUG " in err  # the server did log at DEBUG
    leaks = [line for line in err.splitlines() if PROMPT in line or ANSWER in line]
    assert not leaks, leaks
