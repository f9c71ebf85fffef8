"""One conversation, one writer, across instances: two hive-mcp processes on one real valkey-server.

A call on a conversation through one instance is held at the upstream; a call on the same conversation
through the other instance waits for its turn (its heartbeats say it is waiting, not on the model), then
continues the thread the first one wrote and returns the same `conversation_id`: nothing forks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.servers import HttpServer, Session, instances_on
from tests.clients import text_of
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

FIRST = "the first call's answer"


class Script:
    """Streams (the first call) answer FIRST, held after one chunk; other calls answer at once. `reached` is
    set when a request arrives that carries `watch` (the second call reaching the model)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.watch: str | None = None

    def __call__(self, request: RecordedRequest) -> Reply:
        if self.watch is not None and self.watch in json.dumps(request.messages):
            self.reached.set()
        if isinstance(request.body, dict) and request.body.get("stream"):
            return Reply.stream(["the first call's ", "answer"], hold_after=1)
        return Reply.text("noted")


@pytest.fixture(scope="module")
def script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def upstream(script: Script) -> Iterator[Upstream]:
    with Upstream(reply_for=script) as up:
        yield up


@pytest.fixture(scope="module")
def instances(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[HttpServer]]:
    workdir: Path = tmp_path_factory.mktemp("writers")
    with ValkeyProcess(valkey_binary()) as valkey, instances_on(
        valkey.url, workdir, ("one", "two"), HIVE_MCP_API_BASE=upstream.base_url, HIVE_MCP_MODEL="openai/gpt-4o-mini",
        HIVE_MCP_API_KEY="sk-writers-0123456789SECRET", HIVE_MCP_HEARTBEAT_S="0.2",
    ) as servers:  # fmt: skip
        yield servers


def test_two_calls_on_one_conversation_through_two_instances_take_turns(
    instances: list[HttpServer], upstream: Upstream, script: Script
) -> None:
    one, two = (Session(lambda url=s.url: url, "auto") for s in instances)
    try:
        started = one.run(lambda c: c.call_tool("complete", {"prompt": "my name is Ada"}))
        cid = started.structured_content["conversation_id"]
        waiting = threading.Event()
        results: dict[str, Any] = {}

        async def first(c: Client) -> Any:
            return await c.call_tool("stream_complete", {"prompt": "tell me a story", "conversation_id": cid})

        async def second(c: Client) -> Any:
            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                waiting.set()  # a heartbeat: this call is waiting for something (its turn, or the model)

            args = {"prompt": "what did you just say?", "conversation_id": cid}
            return await c.call_tool("complete", args, progress_callback=on_progress)

        def run(name: str, session: Session, fn: Any) -> None:
            results[name] = session.run(fn, timeout=60)

        upstream.request_seen.clear()
        a = threading.Thread(target=run, args=("first", one, first))
        a.start()
        assert upstream.request_seen.wait(30)  # the first call is on the model, held after its first chunk
        script.watch = "what did you just say?"
        b = threading.Thread(target=run, args=("second", two, second))
        b.start()
        # Either the second call waits (heartbeats while it has not reached the model) or it reached the model.
        go_on = threading.Event()
        threading.Thread(target=lambda: (waiting.wait(30), go_on.set()), daemon=True).start()
        threading.Thread(target=lambda: (script.reached.wait(30), go_on.set()), daemon=True).start()
        assert go_on.wait(30)
        upstream.release()
        a.join(90)
        b.join(90)
    finally:
        one.close()
        two.close()
    first_result, second_result = results["first"], results["second"]
    assert not first_result.is_error and not second_result.is_error, (text_of(first_result), text_of(second_result))
    assert first_result.structured_content["conversation_id"] == cid
    assert second_result.structured_content["conversation_id"] == cid  # the same thread: no fork
    sent = next(r for r in upstream.chat_requests() if "what did you just say?" in json.dumps(r.messages))
    assert FIRST in json.dumps(sent.messages)  # the second call continued the thread the first one wrote
    for server in instances:
        assert "moved on meanwhile" not in server.stderr()
