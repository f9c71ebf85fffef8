"""Hardening: faults in the server itself, a hundred clients leaving mid-stream and kill -9 while dumps are
being written.

The clients drive the SDK's real in-process `Client`, `build_server` and the real LiteLLMProvider against the
test upstream; the dumps are written by a real separate process that is killed mid-write. Each case checks
that the fault leaves nothing behind: no task, file descriptor, upstream connection or slot held past the
clients that left, no dump or error for a client going away, no partial dump under a real name, and a server
and store that go on working.

Races are settled by waiting on events or by polling a condition with a bounded
deadline; nothing sleeps to hide a race.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client

from hive_mcp.dumps import DumpStore, FailureDump
from hive_mcp.limits import Limits
from hive_mcp.provider import LiteLLMProvider
from tests.clients import Progress, mcp_server, text_of
from tests.fault_calls import WAIT, call
from harness.upstream import Reply, Upstream


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
