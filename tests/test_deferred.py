"""Start-up without litellm on the critical path: the server answers while its provider loads.

The loads here are gated on threading.Events, so "still loading" is a fact the
test controls, not a race it hopes to win.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from hive_mcp.dumps import DumpStore

from hive_mcp.provider import DeferredProvider, LLMProvider, LiteLLMProvider, ProviderError
from tests.clients import MODEL, WAIT, connect, mcp_server, Progress, text_of
from tests.conftest import FAST_RETRY, TEST_KEY
from tests.provider_calls import USER
from tests.servers import EXIT_S, STARTUP_S, HttpServer, Session, exited_cleanly, server_env, wait_exit, wait_listening
from harness.processes import INITIALIZE, ROOT, ask_stdio, free_port
from harness.upstream import Reply, Upstream


NEVER_LOADS = (
    "import atexit, sys, threading\n"
    "from hive_mcp.cli import main\n"
    "from hive_mcp.provider.deferred import DeferredProvider\n"
    "never, load = threading.Event(), DeferredProvider._run_load\n"
    "DeferredProvider._run_load = lambda self: (never.wait(), load(self))\n"
    "atexit.register(lambda: print('exit hooks ran', file=sys.stderr, flush=True))\n"
    "sys.exit(main())\n"
)
"""The server's command line, its provider's load never ending; the exit hooks say when they run."""


class GatedLoad:
    """A provider load that blocks until `release()`; `started` is set once it runs."""

    def __init__(self, make: Callable[[], LLMProvider]) -> None:
        self.make = make
        self.started = threading.Event()
        self._gate = threading.Event()

    def __call__(self) -> LLMProvider:
        self.started.set()
        self._gate.wait(60)  # bounded, so a failed test cannot leave the thread behind for good
        return self.make()

    def release(self) -> None:
        self._gate.set()


@pytest.fixture
def gated(upstream: Upstream, store: DumpStore) -> GatedLoad:
    return GatedLoad(
        lambda: LiteLLMProvider(
            model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
        )
    )


async def test_server_answers_while_the_provider_loads_and_calls_wait_for_it(
    gated: GatedLoad, upstream: Upstream, store: DumpStore, mode: str
) -> None:
    upstream.script(Reply.stream(["still ", "loading"]), Reply.text("done"), Reply.stream(["load", "ed"]))
    provider = DeferredProvider(gated, model=MODEL)
    provider.start()
    server = mcp_server(provider, store, heartbeat_s=0.02)
    progress = Progress()
    results: dict[str, Any] = {}
    async with connect(server, mode) as c:
        assert await anyio.to_thread.run_sync(gated.started.wait, WAIT)
        tools = await c.list_tools()  # the handshake and the listing never touch the provider
        assert {t.name for t in tools.tools} == {"complete", "stream_complete", "list_failed_requests", "list_models", "dashboard"}
        assert not provider.loaded

        async def call(name: str, **kwargs: Any) -> None:
            results[name] = await c.call_tool(name, {"prompt": "hi"}, **kwargs)

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: call("stream_complete", progress_callback=progress))
            # Heartbeats flow while the call waits for the provider: it is in flight, not refused.
            await progress.wait_for(lambda items: sum(m is None for _, m in items) >= 2)
            assert not results and not upstream.chat_requests()
            gated.release()
        await call("complete")
        streamed = await c.call_tool("stream_complete", {"prompt": "hi"})  # loaded: the provider's own stream
    assert provider.loaded
    assert text_of(streamed) == "loaded"
    assert text_of(results["stream_complete"]) == "still loading" == progress.text
    assert text_of(results["complete"]) == "done"


async def test_a_provider_that_fails_to_load_fails_each_call_in_one_line(store: DumpStore, mode: str) -> None:
    def load() -> LLMProvider:
        raise ImportError("No module named 'litellm'\n  (second line)")

    provider = DeferredProvider(load, model=MODEL)
    provider.start()
    server = mcp_server(provider, store)
    async with connect(server, mode) as c:
        for tool in ("complete", "stream_complete"):
            r = await c.call_tool(tool, {"prompt": "hi"})
            assert r.is_error
            text = text_of(r)
            assert "\n" not in text and "Traceback" not in text
            assert text.startswith(f"unavailable error from model {MODEL}")
            assert "could not be loaded (ImportError: No module named 'litellm')" in text
        listing = await c.call_tool("list_failed_requests", {})  # everything else keeps serving
    assert not listing.is_error


def test_a_validation_error_at_load_names_the_field_and_what_is_wrong() -> None:
    """A pydantic error's first line names only its model ("1 validation error for ModelInfo"): the call's
    error names the first error's field and message instead."""
    from pydantic import BaseModel

    class ModelInfo(BaseModel):
        max_input_tokens: int

    provider = DeferredProvider(lambda: ModelInfo(max_input_tokens="big"), model=MODEL)  # type: ignore[arg-type,return-value]
    provider.start()
    with pytest.raises(ProviderError) as info:
        provider.complete(USER)
    text = str(info.value)
    assert "\n" not in text
    assert "(ValidationError: ModelInfo: max_input_tokens: Input should be a valid integer" in text, text


async def test_waiting_calls_can_be_cancelled_and_hold_no_worker_threads(gated: GatedLoad, upstream: Upstream) -> None:
    upstream.script(Reply.text("after the wait"))
    provider = DeferredProvider(gated, model=MODEL)
    async with anyio.create_task_group() as tg:
        for _ in range(60):  # more than anyio's 40 default worker threads
            tg.start_soon(provider.acomplete, USER)
        assert await anyio.to_thread.run_sync(gated.started.wait, WAIT)  # the first call started the load
        # Other work that needs a worker thread (dump listing, say) still gets one.
        with anyio.fail_after(WAIT):
            assert await anyio.to_thread.run_sync(lambda: "free") == "free"
        tg.cancel_scope.cancel()
    assert not provider.loaded
    gated.release()
    response = await provider.acomplete(USER)
    assert response.content == "after the wait"
    assert len(upstream.chat_requests()) == 1  # the cancelled calls never reached the upstream


def test_the_sync_call_waits_for_the_load_too(gated: GatedLoad, upstream: Upstream) -> None:
    upstream.script(Reply.text("sync"))
    provider = DeferredProvider(gated, model=MODEL)
    results: list[str] = []
    caller = threading.Thread(target=lambda: results.append(provider.complete(USER).content), daemon=True)
    caller.start()
    assert gated.started.wait(WAIT)  # the call itself started the load, and the load is held
    deadline = time.monotonic() + WAIT
    while provider.waiting != 1:  # the call is seen waiting for the load before the gate opens
        assert caller.is_alive() and time.monotonic() < deadline, results
        time.sleep(0.005)
    assert results == [] and not provider.loaded and upstream.requests == []
    gated.release()
    caller.join(WAIT)
    assert results == ["sync"]
    with pytest.raises(ProviderError):
        DeferredProvider(lambda: 1 / 0, model=MODEL).complete(USER)  # type: ignore[arg-type,return-value]


def test_building_the_server_does_not_import_litellm(tmp_path: Any) -> None:
    """litellm must stay off the start-up path: the server is built, and answers, without it."""
    code = (
        "import sys\n"
        "from hive_mcp.settings import load_settings\n"
        "from hive_mcp.build import build\n"
        f"settings = load_settings({{'dump_dir': {str(tmp_path)!r}}}, environ={{}}, cwd={str(tmp_path)!r}, export=False)\n"
        "app = build(settings)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'openai')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_warm_up_sends_nothing_upstream(upstream: Upstream) -> None:
    # The warm-up call goes to the provider's own api_base, here the upstream: were it a
    # real call (no mock_response), the upstream would see it.
    provider = LiteLLMProvider(model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url)
    provider.warm_up()
    assert upstream.requests == []


async def test_ready_waits_for_the_load_and_a_loaded_provider_is_ready_at_once(gated: GatedLoad, upstream: Upstream) -> None:
    """`ready()` is the interface's one way to wait for a provider that loads in the background (what a
    conversation does before counting its tokens in a worker thread); it reports no failure itself."""
    provider = DeferredProvider(gated, model=MODEL)
    done = anyio.Event()

    async def wait_ready() -> None:
        await provider.ready()
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_ready)
        assert await anyio.to_thread.run_sync(gated.started.wait, WAIT)  # ready() started the load
        assert not done.is_set() and not provider.loaded
        gated.release()
    assert provider.loaded and done.is_set()
    with anyio.fail_after(WAIT):
        await gated.make().ready()  # a provider loaded from the start

    def broken() -> LLMProvider:
        raise ImportError("no litellm")

    failed = DeferredProvider(broken, model=MODEL)
    with anyio.fail_after(WAIT):
        await failed.ready()  # returns: the calls themselves say the load failed
    with pytest.raises(ProviderError, match="could not be loaded"):
        await failed.acomplete(USER)


async def test_start_announces_the_finished_load(gated: GatedLoad, caplog: pytest.LogCaptureFixture) -> None:
    provider = DeferredProvider(gated, model=MODEL)
    gated.release()
    with caplog.at_level(logging.INFO, logger="hive_mcp"):
        provider.start(announce="worker 7: provider loaded")
        with anyio.fail_after(WAIT):
            await provider.ready()
    assert "worker 7: provider loaded" in [r.getMessage() for r in caplog.records]


def test_a_process_that_exits_while_the_provider_loads_waits_for_the_load() -> None:
    """A process must not finalize while a thread is inside an import: the frozen thread keeps Python's
    import lock, and the first import of the teardown (printing an exception, say) waits for it forever.
    Here the load begins importing litellm only once the main thread has returned."""
    code = (
        "import threading\n"
        "from hive_mcp.provider.deferred import DeferredProvider\n"
        "def load():\n"
        "    threading.main_thread().join()  # returns as the interpreter begins to exit\n"
        "    import litellm  # noqa: F401\n"
        "    print('loaded', flush=True)\n"
        "    raise RuntimeError('no provider here')\n"
        "DeferredProvider(load, model='m').start()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout) == (0, "loaded\n"), out.stderr[-2000:]


def test_a_stdio_server_whose_client_leaves_before_the_load_ends_exits_at_once(upstream: Upstream, tmp_path: Any) -> None:
    """A client that lists the tools and leaves (a desktop client probing its servers, the Inspector's CLI) is
    not kept waiting for litellm's import: the server leaves at once, its exit hooks run, exit code 0. The load
    here never ends, so a server that waited for it would never exit."""
    requests = [INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]  # fmt: skip
    replies, code, stderr = ask_stdio(
        [sys.executable, "-c", NEVER_LOADS], [json.dumps(r) for r in requests], {1, 2},
        env=server_env(upstream, tmp_path / "dumps", api_key=True), cwd=ROOT, timeout=STARTUP_S + EXIT_S,
    )  # fmt: skip
    assert code == 0 and "exit hooks ran" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert set(replies) == {1, 2} and "tools" in replies[2]["result"], replies


def test_an_http_server_stopped_before_the_load_ends_exits_at_once(upstream: Upstream, tmp_path: Any) -> None:
    """SIGTERM while litellm still loads: uvicorn stops, raises the signal again as it returns, and the server
    leaves at once with its exit hooks run and exit code 0. The load here never ends, so a server that waited
    for it would never exit."""
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", NEVER_LOADS, "--transport", "http", "--port", str(port)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path, env=server_env(upstream, tmp_path / "d", api_key=True),
        )  # fmt: skip
        try:
            wait_listening(proc, "127.0.0.1", port, log.read_text)
            proc.send_signal(signal.SIGTERM)
            code = wait_exit(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = log.read_text()
    assert code == 0 and "exit hooks ran" in stderr and "hive-mcp stopped" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]


def test_a_server_says_in_its_log_once_its_provider_has_loaded(upstream: Upstream, tmp_path: Any) -> None:
    """One line, as each of `--workers` says it: until then a call waits for litellm's import, which a busy
    machine can take longer over than a call takes; the operator, and a test that bounds a call, wait for it."""
    upstream.script(Reply.text("after the load"))
    server = HttpServer("http", server_env(upstream, tmp_path / "dumps", api_key=True), tmp_path, "announces")
    try:
        server.wait_ready()
        session = Session(server.client_target, "legacy")
        try:  # the first call waits for the load: bounded as the start-up is
            result = session.run(lambda c: c.call_tool("complete", {"prompt": "hi"}), timeout=STARTUP_S)
        finally:
            session.close()
    finally:
        rc = server.terminate()
    log = exited_cleanly(server, rc)
    assert text_of(result) == "after the load"
    assert log.count(": provider loaded") == 1, log
