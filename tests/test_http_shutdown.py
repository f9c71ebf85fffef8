"""Shutdown (hive_mcp/http/shutdown.py): its count of the calls in flight (a POST's calls are in flight until
their answers leave on its event stream, however the stream's bytes are cut into body messages), and the spend
ledger written and released before the application reports its shutdown."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from sse_starlette.event import ensure_bytes

from hive_mcp.http.app import build_app
from hive_mcp.asgi import MCP_PATH
from hive_mcp.http.shutdown import Shutdown
from hive_mcp.provider import LiteLLMProvider
from hive_mcp.provider.base import LLMResponse
from hive_mcp.settings import load_settings
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from tests.conftest import MODEL


def event(message: dict[str, Any], sep: str = "\r\n") -> bytes:
    """`message` as the SDK's event streams send it (sse-starlette's framing)."""
    return ensure_bytes({"event": "message", "data": json.dumps(message)}, sep)


def answer(request_id: int) -> bytes:
    return event({"jsonrpc": "2.0", "id": request_id, "result": {"content": []}})


def progress(text: str) -> bytes:
    return event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "message": text}})


async def in_flight_after_each(bodies: list[bytes]) -> list[int]:
    """The calls in flight after each body message of an event stream answering a POST of calls 1, 2 and 3."""
    shutdown = Shutdown(grace_s=1)
    counts: list[int] = []
    requests = [{"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {}} for i in (1, 2, 3)]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps(requests).encode(), "more_body": False}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for body in bodies:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            counts.append(shutdown.calls_in_flight())

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": MCP_PATH, "headers": [], "query_string": b""}
    await shutdown.wrap(app)(scope, receive, send)
    return counts


async def test_answers_sent_whole_are_counted_and_progress_is_not() -> None:
    assert await in_flight_after_each([progress('"result" is only text'), answer(1), progress("x"), answer(3)]) == [
        3, 2, 2, 1,
    ]  # fmt: skip


async def test_an_answer_cut_between_body_messages_is_counted_once_it_is_whole() -> None:
    whole = answer(2)
    cut = whole.index(b'"result"') + 3  # the second piece alone holds no `"result"`
    assert await in_flight_after_each([progress("a") + whole[:cut], whole[cut:], answer(1) + progress("b")]) == [
        3, 2, 1,
    ]  # fmt: skip


async def test_answers_with_lf_line_ends_and_several_in_one_message_are_counted() -> None:
    assert await in_flight_after_each([event({"jsonrpc": "2.0", "id": 1, "error": {}}, "\n") + answer(2), answer(3)]) == [
        1, 0,
    ]  # fmt: skip


async def test_an_error_raised_after_a_500_was_sent_is_logged_as_one_error_line(caplog) -> None:
    """The client has its 500, yet the operator must hear of the fault (a 4xx answered and then raised, as the SDK's
    /sse does after a 421, stays at debug)."""

    def raising_after(status: int) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"no", "more_body": False})
            raise OverflowError("date value out of range")

        return app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/dashboard/data", "headers": [], "query_string": b""}
    caplog.set_level("DEBUG", logger="hive_mcp")
    for status in (500, 421):
        await Shutdown(grace_s=1).wrap(raising_after(status))(scope, receive, send)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None, caplog.text
    line = errors[0].getMessage()
    assert "/dashboard/data" in line and "OverflowError" in line and "\n" not in line, line


async def test_the_app_reports_its_shutdown_once_the_ledger_has_every_row_and_holds_nothing(
    provider: LiteLLMProvider, tmp_path: Path
) -> None:
    """`build_app` given the server's `Spend`: when its lifespan says it has shut down, a call settled just before
    is in the ledger's backend (not only in the journal, waiting for the batch write) and a call still in flight
    holds nothing. What ends the process next (an HTTP worker: the SIGTERM uvicorn raises again) loses neither."""
    backend = SQLiteBackend(tmp_path / "spend.sqlite3")
    budgets = Budgets.from_settings(day=1.0, month=None, section=None)
    spend = Spend(backend, budgets, provider)
    prompt = [{"role": "user", "content": "hello"}]
    settled = await spend.reserve("local", MODEL, prompt, system="", max_tokens=10, deadline=30)
    await spend.reserve("local", MODEL, prompt, system="", max_tokens=10, deadline=30)  # in flight at shutdown
    await spend.settle(settled, LLMResponse(content="hi", model=MODEL, input_tokens=10, output_tokens=5, cost_usd=0.001))
    settings = load_settings({"transport": "http", "dump_dir": str(tmp_path)}, environ={}, cwd=str(tmp_path), export=False)
    app, _ = build_app(MCPServer("ledger"), settings, (), spend=spend)

    to_app, app_gets = anyio.create_memory_object_stream[dict[str, Any]](2)
    reported: list[str] = []
    at_shutdown: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        reported.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            await to_app.send({"type": "lifespan.shutdown"})
        elif message["type"] == "lifespan.shutdown.complete":
            now = datetime.now(timezone.utc)
            at_shutdown["rows"] = await anyio.to_thread.run_sync(backend.calls, now - timedelta(hours=1))
            at_shutdown["held"] = await anyio.to_thread.run_sync(backend.state, list(budgets.items), now)

    await to_app.send({"type": "lifespan.startup"})
    with anyio.fail_after(30):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, app_gets.receive, send)
    backend.close()
    assert reported == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [r.cost for r in at_shutdown["rows"]] == [1000]
    assert [reserved for _, reserved in at_shutdown["held"].values()] == [0]
