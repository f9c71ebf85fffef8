"""Servers for the subprocess tests: `python -m hive_mcp` over HTTP, and MCP client sessions on it.

Shared by the tests that start the server as a process. Waiting is always on
an event or on readiness, with a deadline; never a bare sleep.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import MODEL, TEST_KEY
from harness.processes import child_env, free_port
from harness.upstream import Upstream

TOOLS = {
    "complete", "stream_complete", "list_failed_requests", "list_models", "dashboard", "list_conversations", "read_result"
}
STARTUP_S = 90.0  # litellm imports in parallel on a small machine
CALL_S = 30.0
EXIT_S = 20.0

T = TypeVar("T")


def server_env(upstream: Upstream, dump_dir: Path, *, api_key: bool) -> dict[str, str]:
    """The server's environment: the machine's, minus any real keys, plus the test settings."""
    env = child_env(
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",  # a SIGABRT from `wait_exit` then prints every thread's stack
        HIVE_MCP_API_BASE=upstream.base_url,
        HIVE_MCP_MODEL=MODEL,
        HIVE_MCP_DUMP_DIR=str(dump_dir),
        HIVE_HOME=str(dump_dir.parent / "hive-home"),  # the conversation store too, never the machine's home
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_OFFLINE_MODE="true",
    )
    if api_key:
        env["HIVE_MCP_API_KEY"] = TEST_KEY
    return env


def wait_exit(proc: subprocess.Popen[Any], timeout: float = EXIT_S) -> int | None:
    """The exit code, or None if the process did not exit in time.

    A process that hangs is sent SIGABRT: with PYTHONFAULTHANDLER set it prints
    the stack of every thread to its stderr, so the failure shows where it hung.
    """
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return None


def wait_listening(
    proc: subprocess.Popen[Any], host: str, port: int, stderr: Callable[[], str], timeout: float = STARTUP_S
) -> None:
    """Until the server's port accepts connections (bounded), failing at once if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{stderr()}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"server not listening on {port} after {timeout} s:\n{stderr()}")
            time.sleep(0.05)  # polling a port: there is no event to wait on


def wait_logged(
    stderr: Callable[[], str], line: str, times: int = 1, timeout: float = STARTUP_S,
    exited: Callable[[], int | None] | None = None,
) -> None:
    """Until `line` is in `stderr` `times` times (bounded), failing at once if `exited` gives the server's exit
    code."""
    deadline = time.monotonic() + timeout
    while stderr().count(line) < times:
        if exited is not None and (code := exited()) is not None:
            pytest.fail(f"server exited with {code}:\n{stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{line!r} not logged {times} time(s) after {timeout} s:\n{stderr()}")
        time.sleep(0.05)  # polling a log file: there is no event to wait on


def wait_provider_loaded(
    stderr: Callable[[], str], processes: int = 1, timeout: float = STARTUP_S,
    exited: Callable[[], int | None] | None = None,
) -> None:
    """Until `processes` of a server say in `stderr` they have loaded the provider (`wait_logged`).

    The server answers `initialize` before litellm is imported; a call made before then waits for the import,
    which on a busy machine takes longer than `CALL_S`. A test that bounds its calls so waits for this first,
    and the bound is the call's alone.
    """
    wait_logged(stderr, ": provider loaded", processes, timeout, exited)


def exited_cleanly(server: HttpServer, rc: int | None) -> str:
    """The server's log, once `rc` (from `wait_exit`) says it exited 0 and the log shows no traceback."""
    log = server.stderr()
    assert rc == 0, log
    assert "Traceback" not in log, log
    return log


def _limit_files(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class HttpServer:
    """`python -m hive_mcp --transport http|sse` as a subprocess, logs in files.

    `host` is the address to bind (0.0.0.0 is reached at 127.0.0.1); `args` are more flags;
    `max_files` lowers the process's open-file limit (RLIMIT_NOFILE), as a small machine's would be;
    `module` is what `python -m` runs (`tests.worker_pid`: the workers tell which one answered).
    """

    def __init__(
        self,
        transport: str,
        env: dict[str, str],
        workdir: Path,
        name: str,
        *,
        host: str = "127.0.0.1",
        args: Sequence[str] = (),
        max_files: int | None = None,
        module: str = "hive_mcp",
    ) -> None:
        self.transport = transport
        self.host = "127.0.0.1" if host == "0.0.0.0" else host
        self.port = free_port(self.host)
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / f"{name}.stderr.log"
        self._stderr = open(self.stderr_path, "w+b")  # noqa: SIM115 - closed in stop()
        self._stdout = open(workdir / f"{name}.stdout.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--transport", transport, "--host", host,
             "--port", str(self.port), *args],
            env=env,
            cwd=workdir,  # no stray .env
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            preexec_fn=None if max_files is None else lambda: _limit_files(max_files),
        )
        self.returncode: int | None = None
        self._signalled = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "http" else "/sse"
        return f"{self.base_url}{path}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_S) -> None:
        wait_listening(self.proc, self.host, self.port, self.stderr, timeout)

    def wait_loaded(self, processes: int = 1, timeout: float = STARTUP_S) -> None:
        """`wait_ready`, then `wait_provider_loaded` for `processes` of the server (each worker loads its own)."""
        self.wait_ready(timeout)
        wait_provider_loaded(self.stderr, processes, timeout, self.proc.poll)

    def client_target(self) -> Any:
        return self.url if self.transport == "http" else sse_client(self.url)

    def signal_stop(self) -> None:
        """One SIGTERM, however often this is called."""
        if not self._signalled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self._signalled = True

    def terminate(self) -> int:
        """SIGTERM, then the exit code (killing only if it does not exit in time)."""
        self.signal_stop()
        self.returncode = wait_exit(self.proc)
        self._stderr.close()
        self._stdout.close()
        return -999 if self.returncode is None else self.returncode


class Session:
    """An MCP client connection driven on its own event-loop thread.

    `run(fn)` runs `fn(client)` there and returns its result. Transport-level
    faults the client saw (a line on stdout that is not JSON-RPC, say) are kept
    in `faults`.
    """

    def __init__(
        self,
        make_target: Callable[[], Any],
        mode: str,
        *,
        transport: str = "",
        dump_dir: Path | None = None,
        read_stderr: Callable[[], str] = str,
    ) -> None:
        self.mode = mode
        self.transport = transport
        self.dump_dir = dump_dir
        self.read_stderr = read_stderr  # the server's stderr so far
        self.faults: list[Exception] = []
        self.client: Client | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"mcp-{mode}")
        self._thread.start()
        self._stop: anyio.Event | None = None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._main = asyncio.run_coroutine_threadsafe(self._hold(make_target, ready), self._loop)
        try:
            ready.result(timeout=STARTUP_S)
        except BaseException:
            self.close()
            raise

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.faults.append(message)

    async def _hold(self, make_target: Callable[[], Any], ready: concurrent.futures.Future[None]) -> None:
        try:
            async with Client(make_target(), mode=self.mode, cache=None, message_handler=self._on_message) as client:
                self.client = client
                self._stop = anyio.Event()
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def run(self, fn: Callable[[Client], Awaitable[T]], timeout: float = CALL_S) -> T:
        assert self.client is not None
        client = self.client

        async def call() -> T:
            with anyio.fail_after(timeout):
                return await fn(client)

        fut = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return fut.result(timeout=timeout + 5)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def wait_loaded(self, timeout: float = STARTUP_S) -> None:
        """`wait_provider_loaded` on the server's log (a stdio server's, which starts with the session)."""
        wait_provider_loaded(self.read_stderr, 1, timeout)

    def close(self) -> BaseException | None:
        """End the session; returns what closing raised (a server already gone may make it raise)."""
        error: BaseException | None = None
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        try:
            self._main.result(timeout=EXIT_S)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            error = exc
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=EXIT_S)
        if not self._thread.is_alive():
            self._loop.close()
        return error


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def authed_target(server: HttpServer, token: str) -> Callable[[], Any]:
    """An SDK client transport that sends `Authorization: Bearer token`."""
    if server.transport == "sse":
        return lambda: sse_client(server.url, headers=bearer(token))

    @asynccontextmanager
    async def streamable() -> AsyncIterator[Any]:
        # The SDK's client carries its own default timeouts; one of ours needs them said (an event stream
        # may stay quiet for minutes: the read timeout is long).
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=bearer(token), timeout=timeout) as http_client:
            async with streamable_http_client(server.url, http_client=http_client) as streams:
                yield streams

    return streamable


def dump_id_in(text: str) -> str:
    """The dump id in a failed call's text (its hive://failed-requests/ URI)."""
    m = re.search(r"hive://failed-requests/([A-Za-z0-9_.-]+[0-9a-f])", text)
    assert m, f"no dump URI in: {text!r}"
    return m[1]


@contextmanager
def served_http(workdir: Path, name: str, **env: str) -> Iterator[tuple[HttpServer, Upstream]]:
    """`python -m hive_mcp` over streamable HTTP with an API key, on a scripted upstream of its own, `env` added;
    it must exit 0 when stopped."""
    with Upstream() as upstream:
        env = server_env(upstream, workdir / "dumps", api_key=True) | {"HIVE_HOME": str(workdir / "home"), **env}
        server = HttpServer("http", env, workdir, name)
        try:
            server.wait_loaded()  # its callers' calls are bounded as calls, not as litellm's import too
            yield server, upstream
        finally:
            assert server.terminate() == 0, server.stderr()


@contextmanager
def instances_on(state_url: str, workdir: Path, names: Sequence[str], args: Sequence[str] = (), **env: str) -> Iterator[
    list[HttpServer]
]:
    """Stateless hive-mcp instances sharing the Redis at `state_url`, each with its own dump directory and hive
    home under `workdir` (as on separate machines); `env` adds settings. They must exit 0 on SIGTERM."""
    servers = []
    for name in names:
        child = child_env(
            PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", HIVE_MCP_STATE_URL=state_url,
            HIVE_MCP_DUMP_DIR=str(workdir / f"{name}-dumps"), HIVE_HOME=str(workdir / f"{name}-home"),
            LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true", **env,
        )  # fmt: skip
        servers.append(HttpServer("http", child, workdir, name, args=["--stateless", *args]))
    try:
        for server in servers:
            server.wait_loaded()  # their callers' calls are bounded as calls, not as litellm's import too
        yield servers
    finally:
        codes = [server.terminate() for server in servers]
    assert codes == [0] * len(servers), [s.stderr() for s in servers]
