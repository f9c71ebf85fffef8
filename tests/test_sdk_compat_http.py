"""The private SDK and sse-starlette uses of the HTTP and stdio transports (hive_mcp/sdk_compat.py).

Each test fails with a message naming the installed version when what it
reaches for moves, so an upgrade of the SDK breaks here first.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp import sdk_compat

VERSIONS = f"{sdk_compat.installed('mcp')}, {sdk_compat.installed('sse-starlette')}"


@pytest.fixture
def app_status() -> Iterator[type]:
    """sse-starlette's AppStatus, put back as it was afterwards (it is process-global)."""
    from sse_starlette.sse import AppStatus

    saved = (AppStatus.should_exit, AppStatus.enable_automatic_graceful_drain, AppStatus.original_handler)
    try:
        yield AppStatus
    finally:
        AppStatus.should_exit, AppStatus.enable_automatic_graceful_drain, AppStatus.original_handler = saved


def test_everything_reached_for_is_there() -> None:
    assert sdk_compat.check_http_and_stdio(MCPServer("compat")) == [], VERSIONS


def test_the_check_names_the_version_when_an_attribute_is_gone() -> None:
    class NotAnMCPServer:
        pass

    problems = sdk_compat.check_http_and_stdio(NotAnMCPServer())
    assert len(problems) == 1 and "_lowlevel_server" in problems[0]
    assert sdk_compat.installed("mcp") in problems[0]


def test_keeping_event_streams_stops_sse_starlette_ending_them_at_shutdown(app_status: type) -> None:
    app_status.should_exit = False
    app_status.original_handler = None  # uvicorn's own handler, chained after: not under test
    sdk_compat.keep_event_streams_at_shutdown()
    app_status.handle_exit()  # what uvicorn's signal handling calls, through sse-starlette's patch
    assert app_status.should_exit is False, f"sse-starlette ended the streams anyway ({VERSIONS})"
    sdk_compat.end_all_event_streams()
    assert app_status.should_exit is True, VERSIONS


def test_the_lowlevel_server_runs_streams_as_stdio_needs() -> None:
    low = sdk_compat.lowlevel_server(MCPServer("compat"))
    options = low.create_initialization_options()
    assert options.server_name == "compat", VERSIONS
    assert callable(low.run), VERSIONS


def test_anyio_has_the_event_loop_token_stdio_hands_to_its_threads() -> None:
    """hive_mcp/stdio.py: anyio.lowlevel.current_token() and from_thread.run(..., token=), public since anyio 4.11."""
    import inspect

    import anyio.from_thread
    import anyio.lowlevel

    where = sdk_compat.installed("anyio")
    assert callable(getattr(anyio.lowlevel, "current_token", None)), where
    assert "token" in inspect.signature(anyio.from_thread.run).parameters, where
    assert "token" in inspect.signature(anyio.from_thread.run_sync).parameters, where


def test_the_open_sessions_of_a_session_manager_are_readable() -> None:
    server = MCPServer("compat")
    server.streamable_http_app()
    ids = sdk_compat.open_session_ids(server.session_manager)
    assert "no-such-session" not in ids, VERSIONS
    with pytest.raises(TypeError, match="_server_instances"):
        sdk_compat.open_session_ids(object())


def test_only_a_session_manager_can_be_made_to_route_inline() -> None:
    with pytest.raises(TypeError, match="_admit_session"):
        sdk_compat.route_sessions_inline(object(), object)


def test_only_an_sse_starlette_response_can_stand_in_for_the_transports_own() -> None:
    import mcp.server.streamable_http as transport

    before = transport.EventSourceResponse
    with pytest.raises(TypeError, match="EventSourceResponse"):
        sdk_compat.send_events_with(object)
    assert transport.EventSourceResponse is before


def test_both_ends_of_a_memory_stream_share_their_key_and_nothing_else_has_one() -> None:
    writer, reader = anyio.create_memory_object_stream[object](0)
    other, _ = anyio.create_memory_object_stream[object](0)
    assert sdk_compat.memory_stream_key(writer) == sdk_compat.memory_stream_key(reader) is not None, VERSIONS
    assert sdk_compat.memory_stream_key(other) != sdk_compat.memory_stream_key(writer)
    assert sdk_compat.memory_stream_key(object()) is None
