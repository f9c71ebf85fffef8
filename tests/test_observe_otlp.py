"""End to end: `python -m hive_mcp` over HTTP as a subprocess, exporting OTLP/HTTP to a receiver the test starts;
the client's trace (sent in `_meta` by the SDK's client) continues through hive-mcp to the provider's span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from opentelemetry import trace

from harness.otlp import OtlpReceiver
from harness.upstream import Reply, Upstream
from tests.clients import text_of
from tests.otel import memory_spans
from tests.servers import CALL_S, HttpServer, Session, server_env

SPAN_KIND_CLIENT = 3  # OTLP's enum


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def test_the_clients_trace_id_is_on_the_providers_span(receiver: OtlpReceiver, tmp_path: Path) -> None:
    memory_spans()  # the client side traces too, so the SDK's client sends a traceparent in _meta
    with Upstream(Reply.text("Paris")) as upstream:
        env = {
            **server_env(upstream, tmp_path / "dumps", api_key=True),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "hive-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRICS_EXPORTER": "none",
        }  # fmt: skip
        server = HttpServer("http", env, tmp_path, "otlp")
        try:
            server.wait_loaded()  # the call is bounded as a call, not as litellm's import
            session = Session(server.client_target, "auto")
            try:

                async def call(client: Client) -> str:
                    with trace.get_tracer("test").start_as_current_span("the client's work") as work:
                        result = await client.call_tool("complete", {"prompt": "capital of France?"})
                        assert not result.is_error and text_of(result) == "Paris"
                        return format(work.get_span_context().trace_id, "032x")

                trace_id = session.run(call)
            finally:
                session.close()
            attempt = receiver.wait_for(lambda s: s["name"] == "chat gpt-4o-mini", CALL_S)
            tool = receiver.wait_for(lambda s: s["name"] == "tools/call complete", CALL_S)
        finally:
            assert server.terminate() == 0, server.stderr()
    assert attempt is not None and tool is not None, receiver.spans
    assert attempt["trace_id"] == trace_id == tool["trace_id"]
    assert attempt["kind"] == SPAN_KIND_CLIENT and attempt["service"] == "hive-under-test"
    assert attempt["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert attempt["attributes"]["hive_mcp.caller"] == "local"
    assert "capital" not in str(attempt["attributes"])  # no content unless HIVE_MCP_OTEL_CAPTURE_CONTENT=on
