"""A server that stops while a call continues a conversation gives the conversation's turn back as it goes.

The call holds the conversation's writer turn in the store (a row of the SQLite file, a key of Redis) with a
lease of `WRITER_LEASE_S`. A server stopped while the call is still on the model (SIGTERM over HTTP, its grace
period over; stdin closed over stdio) ends the call, which gives its turn back, and closes its conversation
store on the way out, which gives back any turn this process still holds (`Turns.aclose`): another process
continues the conversation at once, not once the lease has run out. On SQLite the store's close shows in the
file itself: its write-ahead log is checkpointed and removed. Each server is a real process on a real SQLite file
or a real valkey-server; the other process is a store opened here.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client

from harness.processes import INITIALIZE
from harness.upstream import Reply, Upstream
from harness.valkey import ValkeyProcess
from hive_mcp.conversations import ConversationBusy, ConversationStore
from hive_mcp.conversations.redis_store import RedisStore
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.conversations.writers import WRITER_LEASE_S
from tests.clients import text_of
from tests.conftest_valkey import user
from tests.servers import CALL_S, STARTUP_S, HttpServer, Session, exited_cleanly, server_env, wait_exit

AT_ONCE_S = 2.0
"""How long the other process may wait for the turn: well under the lease, which a turn left held would take."""
assert AT_ONCE_S < WRITER_LEASE_S / 3


def held_upstream() -> Upstream:
    """The first call (starting the conversation) answers; the second (continuing it) streams one chunk and is
    held there until released."""
    upstream = Upstream()
    upstream.script(Reply.text("hello Ada"), Reply.stream(["a long ", "story"], hold_after=1))
    return upstream


def store_env(upstream: Upstream, workdir: Path, valkey: ValkeyProcess | None) -> dict[str, str]:
    env = server_env(upstream, workdir / "dumps", api_key=True)
    if valkey is not None:
        env["HIVE_MCP_STATE_URL"] = valkey.url
    return env | {"HIVE_MCP_SHUTDOWN_GRACE_S": "0.2"}  # the held call outlives the grace period


def other_store(workdir: Path, valkey: ValkeyProcess | None) -> ConversationStore:
    """The store as another process opens it: the server's SQLite file, or the same Redis."""
    if valkey is not None:
        return RedisStore(valkey.url)
    return SQLiteStore(workdir / "hive-home" / "hive-mcp.sqlite3")


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def valkey(kind: str, request: pytest.FixtureRequest) -> ValkeyProcess | None:
    return request.getfixturevalue("valkey_server") if kind == "redis" else None


def assert_closed(workdir: Path, valkey: ValkeyProcess | None) -> None:
    """The server closed its SQLite store as it stopped: SQLite checkpoints the file's write-ahead log and removes
    it when its last connection closes, which a process that exits without closing never does."""
    if valkey is None:
        assert not (workdir / "hive-home" / "hive-mcp.sqlite3-wal").exists()


async def busy(store: ConversationStore, cid: str) -> bool:
    """Whether the conversation's turn is held (by the server's call) now."""
    try:
        async with store.writer(cid, timeout_s=0):
            return False
    except ConversationBusy:
        return True
    finally:
        await store.aclose()


async def continue_at_once(store: ConversationStore, cid: str) -> float:
    """Take the conversation's turn (waiting at most `AT_ONCE_S`) and continue it; how long the turn took."""
    try:
        started = time.monotonic()
        async with store.writer(cid, timeout_s=AT_ONCE_S):
            waited = time.monotonic() - started
            tip = (await store.thread(cid)).tip
            await store.append(cid, [user("from elsewhere")], None, expected_tip=tip)
        return waited
    finally:
        await store.aclose()


def test_a_server_stopped_by_sigterm_mid_call_gives_the_conversations_turn_back(
    kind: str, valkey: ValkeyProcess | None, tmp_path: Path
) -> None:
    with held_upstream() as upstream:
        server = HttpServer("http", store_env(upstream, tmp_path, valkey), tmp_path, f"stopped-{kind}")
        session: Session | None = None
        try:
            server.wait_loaded()  # the first call is bounded as a call, not as litellm's import
            session = Session(lambda: server.url, "auto")
            started = session.run(lambda c: c.call_tool("complete", {"prompt": "my name is Ada"}))
            assert not started.is_error, text_of(started)
            cid = started.structured_content["conversation_id"]

            def held_call(c: Client) -> Any:
                return c.call_tool("stream_complete", {"prompt": "tell me a story", "conversation_id": cid})

            threading.Thread(target=lambda: _quietly(session, held_call), daemon=True).start()
            assert upstream.chunk_sent.wait(CALL_S), server.stderr()  # the call is on the model
            assert anyio.run(busy, other_store(tmp_path, valkey), cid)  # and holds the turn
            server.signal_stop()
            rc = wait_exit(server.proc)
        finally:
            server.terminate()
            if session is not None:
                session.close()
            upstream.release()
        exited_cleanly(server, rc)
        assert_closed(tmp_path, valkey)
        waited = anyio.run(continue_at_once, other_store(tmp_path, valkey), cid)
    assert waited < AT_ONCE_S


def test_a_stdio_server_whose_input_ends_mid_call_gives_the_conversations_turn_back(
    kind: str, valkey: ValkeyProcess | None, tmp_path: Path
) -> None:
    with held_upstream() as upstream, open(tmp_path / "stdio.stderr.log", "w+") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hive_mcp"], env=store_env(upstream, tmp_path, valkey), cwd=tmp_path,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, text=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            replies = _replies(proc.stdout)
            _send(proc.stdin, INITIALIZE)
            assert replies.get(timeout=STARTUP_S)["id"] == 1
            _send(proc.stdin, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            _send(proc.stdin, _call(2, "complete", {"prompt": "my name is Ada"}))
            started = replies.get(timeout=STARTUP_S)
            cid = started["result"]["structuredContent"]["conversation_id"]
            _send(proc.stdin, _call(3, "stream_complete", {"prompt": "tell me a story", "conversation_id": cid}))
            assert upstream.chunk_sent.wait(CALL_S)  # the call is on the model
            assert anyio.run(busy, other_store(tmp_path, valkey), cid)  # and holds the turn
            proc.stdin.close()
            rc = wait_exit(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            upstream.release()
        errlog.seek(0)
        assert rc == 0, errlog.read()
        assert_closed(tmp_path, valkey)
        waited = anyio.run(continue_at_once, other_store(tmp_path, valkey), cid)
    assert waited < AT_ONCE_S


def _quietly(session: Session, fn: Any) -> None:
    """Run the call whose server is stopped under it: how it ends (an error, a closed stream) is not the test."""
    try:
        session.run(fn, timeout=CALL_S)
    except BaseException:  # noqa: BLE001 - the server went away mid-call, as the test intends
        pass


def _call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name,
                                                                                   "arguments": arguments}}


def _send(stdin: IO[str], message: dict[str, Any]) -> None:
    stdin.write(json.dumps(message) + "\n")
    stdin.flush()


def _replies(stdout: IO[str]) -> queue.Queue[dict[str, Any]]:
    """The server's responses (messages with an id), read by a thread as they come."""
    out: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        for line in stdout:
            message = json.loads(line)
            if "id" in message and "method" not in message:
                out.put(message)

    threading.Thread(target=read, daemon=True).start()
    return out
