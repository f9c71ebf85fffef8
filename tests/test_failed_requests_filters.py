"""`list_failed_requests`' filters as an agent sends them: `error_type` from the schema's enum (an unknown
one refused with the list) and `since` in the forms the command line and the dashboard take."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import ERROR_TYPES, DumpStore
from tests.clients import connect, make_dump


async def test_list_failed_requests_error_type_is_an_enum_and_an_unknown_one_is_refused_with_the_list(
    make_server: Callable[..., MCPServer], store: DumpStore, mode: str
) -> None:
    store.write(make_dump(0, error_type="rate_limit"))
    async with connect(make_server(), mode) as c:
        tool = {t.name: t for t in (await c.list_tools()).tools}["list_failed_requests"]
        wrong = await c.call_tool("list_failed_requests", {"error_type": "ratelimit"})
        right = await c.call_tool("list_failed_requests", {"error_type": "rate_limit"})
    assert tool.input_schema["properties"]["error_type"]["enum"] == list(ERROR_TYPES)
    assert {"rate_limit", "auth", "transient", "timeout", "context_window"} <= set(ERROR_TYPES)
    assert wrong.is_error
    text = "".join(getattr(part, "text", "") for part in wrong.content)
    assert len(text.splitlines()) == 1 and "error_type" in text and "ratelimit" in text
    assert all(name in text for name in ERROR_TYPES), text
    assert right.structured_content is not None and len(right.structured_content["items"]) == 1


@pytest.mark.parametrize("since", ["1d", "2h", "1d12h", "2026-11-20", "2026-11-20T14:30:00Z"])
async def test_list_failed_requests_since_takes_what_the_cli_and_the_dashboard_take(
    make_server: Callable[..., MCPServer], store: DumpStore, mode: str, since: str
) -> None:
    now = datetime.now(UTC)
    store.write(make_dump(0, when=now - timedelta(minutes=30)))  # inside every window
    store.write(make_dump(1, when=datetime(2025, 1, 1, tzinfo=UTC)))  # before every window
    async with connect(make_server(), mode) as c:
        r = await c.call_tool("list_failed_requests", {"since": since})
    assert not r.is_error, r.content
    assert r.structured_content is not None and len(r.structured_content["items"]) == 1


@pytest.mark.parametrize("tool", ["list_failed_requests", "dashboard"])
async def test_a_since_with_no_utc_time_is_one_line_naming_it(
    make_server: Callable[..., MCPServer], mode: str, tool: str
) -> None:
    async with connect(make_server(), mode) as c:
        r = await c.call_tool(tool, {"since": "0001-01-01T00:00:00+23:59"})
    text = "".join(getattr(part, "text", "") for part in r.content)
    assert r.is_error and len(text.splitlines()) == 1 and "since" in text and "out of range" in text, text
