"""The provider's GenAI client spans, one per upstream attempt, through litellm's real HTTP path to the scripted
upstream, recorded by the OpenTelemetry SDK's in-memory exporter; and the time each call waited on the upstream."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from hive_mcp.call_context import labelled
from hive_mcp.calls import standard_chain
from hive_mcp.limits import Limits
from hive_mcp.llms.static import StaticCatalogue
from hive_mcp.observe.tracing import configure, exporter_for, step
from hive_mcp.provider import FinishEvent, LiteLLMProvider, ProviderError
from hive_mcp.spend import Budgets, SQLiteBackend, Spend
from harness.upstream import Reply
from tests.conftest import FAST_RETRY, MODEL, TEST_KEY
from tests.otel import memory_metrics, memory_spans, metric_points, named

QUESTION = [{"role": "user", "content": "what is the capital of France?"}]
SPAN = "chat gpt-4o-mini"
USAGE = {
    "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2},
}  # fmt: skip


@pytest.fixture
def spans():
    return memory_spans()


async def test_each_attempt_is_a_genai_client_span_with_the_conventions_attributes(warm, upstream, spans):
    upstream.script(Reply.error(429, "slow down"), Reply.text("Paris", usage=USAGE))
    with labelled("alice", "conv-1"):  # as the call layer names the call around the provider
        reply = await warm.acomplete(QUESTION, max_tokens=50, temperature=0.2)
    first, second = named(spans.get_finished_spans(), SPAN)
    for span in (first, second):
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert span.attributes["gen_ai.request.max_tokens"] == 50
        assert span.attributes["gen_ai.request.temperature"] == 0.2
        assert span.attributes["gen_ai.request.stream"] is False
        assert span.attributes["gen_ai.conversation.id"] == "conv-1"
        assert span.attributes["hive_mcp.caller"] == "alice"
    assert first.attributes["hive_mcp.attempt"] == 1 and second.attributes["hive_mcp.attempt"] == 2
    assert first.attributes["error.type"] == "rate_limit"
    assert first.status.status_code is StatusCode.ERROR
    assert "error.type" not in second.attributes and second.status.status_code is not StatusCode.ERROR
    assert second.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert tuple(second.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert second.attributes["gen_ai.usage.input_tokens"] == reply.input_tokens == 11
    assert second.attributes["gen_ai.usage.output_tokens"] == 7
    assert second.attributes["gen_ai.usage.cache_read.input_tokens"] == 3
    assert second.attributes["gen_ai.usage.reasoning.output_tokens"] == 2
    assert second.attributes["hive_mcp.cost_usd"] == pytest.approx(reply.cost_usd)
    assert first.end_time <= second.start_time


async def test_the_attempt_spans_continue_the_trace_they_are_called_in(warm, upstream, spans):
    upstream.script(Reply.text("Paris"))
    with trace.get_tracer("test").start_as_current_span("tools/call complete") as parent:
        await warm.acomplete(QUESTION)
    (span,) = named(spans.get_finished_spans(), SPAN)
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


async def test_a_stream_span_records_its_time_to_first_chunk(warm, upstream, spans):
    upstream.script(Reply.stream(["Par", "is"], delay=0.2))
    events = [event async for event in warm.stream(QUESTION)]
    assert isinstance(events[-1], FinishEvent)
    (span,) = named(spans.get_finished_spans(), SPAN)
    assert span.attributes["gen_ai.request.stream"] is True
    first_chunk = span.attributes["hive_mcp.time_to_first_chunk_s"]
    assert 0.2 <= first_chunk <= (span.end_time - span.start_time) / 1e9


async def test_a_failed_call_names_its_dump_on_its_last_attempt(warm, upstream, spans):
    upstream.script(Reply.error(400, "bad request"))
    with pytest.raises(ProviderError) as caught:
        await warm.acomplete(QUESTION)
    (span,) = named(spans.get_finished_spans(), SPAN)
    assert caught.value.dump_id and span.attributes["hive_mcp.dump_id"] == caught.value.dump_id
    assert span.attributes["error.type"] == caught.value.error_type


async def test_no_prompt_or_answer_text_on_a_span_unless_asked(warm, upstream, spans):
    upstream.script(Reply.text("Paris is the capital"))
    await warm.acomplete(QUESTION)
    (span,) = named(spans.get_finished_spans(), SPAN)
    text = json.dumps({k: str(v) for k, v in span.attributes.items()})
    assert "capital" not in text and "gen_ai.input.messages" not in span.attributes


async def test_asked_for_content_goes_on_the_span_redacted(upstream, store, spans):
    capturing = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store,
        capture_content=True,
    )
    upstream.script(Reply.text(f"Paris, and the key is {TEST_KEY}"))
    await capturing.acomplete([{"role": "user", "content": f"my key is {TEST_KEY}; capital of France?"}])
    (span,) = named(spans.get_finished_spans(), SPAN)
    asked, answered = span.attributes["gen_ai.input.messages"], span.attributes["gen_ai.output.messages"]
    assert "capital of France" in asked and "Paris" in answered
    assert TEST_KEY not in asked + answered


async def test_captured_content_is_in_the_conventions_message_format(upstream, store, spans):
    """The system prompt as `gen_ai.system_instructions` parts; each message as role and parts (text, tool_call,
    tool_call_response); the answer with its finish_reason: GenAI semantic conventions' JSON schemas, redacted."""
    capturing = LiteLLMProvider(
        model=MODEL, api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store,
        capture_content=True,
    )  # fmt: skip
    asked_tool = {"id": "c2", "name": "map", "arguments": '{"z": 3}'}
    upstream.script(Reply.text(f"Sunny; key {TEST_KEY}", tool_calls=[asked_tool]))
    history = [
        {"role": "user",
         "content": [{"type": "text", "text": f"my key is {TEST_KEY}"}, {"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    await capturing.acomplete(history, system="Be brief.")
    (span,) = named(spans.get_finished_spans(), SPAN)
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "my key is [REDACTED]"},
                                   {"type": "text", "content": "weather?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "weather",
                                         "arguments": {"city": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]},
    ]  # fmt: skip
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "finish_reason": "tool_call",
         "parts": [{"type": "text", "content": "Sunny; key [REDACTED]"},
                   {"type": "tool_call", "id": "c2", "name": "map", "arguments": {"z": 3}}]},
    ]  # fmt: skip


async def test_a_call_tells_how_long_it_waited_on_the_upstream(warm, upstream):
    upstream.script(Reply.text("Paris", delay=0.3))
    started = time.perf_counter()
    reply = await warm.acomplete(QUESTION)
    wall = time.perf_counter() - started
    assert 0.3 <= reply.upstream_wait_s <= wall


async def test_a_stream_tells_how_long_it_waited_on_the_upstream(warm, upstream):
    upstream.script(Reply.stream(["Par", "is"], delay=0.3))
    started = time.perf_counter()
    events = [event async for event in warm.stream(QUESTION)]
    wall = time.perf_counter() - started
    assert 0.3 <= events[-1].response.upstream_wait_s <= wall


async def test_a_failed_call_tells_how_long_it_waited_too(warm, upstream):
    upstream.script(Reply.error(400, "bad request"))
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        await warm.acomplete(QUESTION)
    assert 0 < caught.value.upstream_wait_s <= time.perf_counter() - started


async def test_the_genai_metrics_are_recorded_through_the_sdk(warm, upstream):
    reader = memory_metrics()
    upstream.script(Reply.error(429, "slow down"), Reply.text("Paris", usage=USAGE))
    await warm.acomplete(QUESTION)
    durations = metric_points(reader, "gen_ai.client.operation.duration")
    ok = [p for p in durations if p.attributes.get("gen_ai.response.model") == "gpt-4o-mini"]
    failed = [p for p in durations if p.attributes.get("error.type") == "rate_limit"]
    assert ok and failed and all(p.attributes["gen_ai.operation.name"] == "chat" for p in ok + failed)
    assert all(p.attributes["gen_ai.provider.name"] == "openai" for p in ok + failed)
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metric_points(reader, "gen_ai.client.token.usage")}
    assert tokens["input"].sum >= 11 and tokens["output"].sum >= 7


@pytest.mark.parametrize(
    ("env", "traces"),
    [
        ({}, None),  # no endpoint: nothing exported
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, None),
    ],
    ids=["nothing", "endpoint", "traces-endpoint", "exporter-none", "sdk-disabled", "console", "unsupported"],
)
def test_only_the_standard_variables_turn_exporting_on(env: dict[str, str], traces: str | None) -> None:
    assert exporter_for("traces", env) == traces
    if traces is None and exporter_for("metrics", env) is None:
        assert configure(env) is False  # installs nothing


async def test_a_step_span_sits_in_the_calls_trace_with_its_attributes(warm, upstream, spans):
    upstream.script(Reply.text("Paris"))
    with trace.get_tracer("test").start_as_current_span("tools/call complete") as parent:
        with step("hive_mcp.queue", caller="alice", conversation=None):
            await warm.acomplete(QUESTION)
    (provider_step,) = named(spans.get_finished_spans(), "hive_mcp.queue")
    (attempt,) = named(spans.get_finished_spans(), SPAN)
    assert provider_step.kind is SpanKind.INTERNAL and dict(provider_step.attributes) == {"hive_mcp.caller": "alice"}
    assert provider_step.parent.span_id == parent.get_span_context().span_id
    assert attempt.parent.span_id == provider_step.context.span_id


def readme_step_spans() -> list[str]:
    """The step spans the README's Traces table names, in its order."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    traces = text[text.index("### Traces"):]
    (row,) = [line for line in traces.splitlines() if "(the steps of a call" in line]
    return re.findall(r"`(hive_mcp\.\w+)`", row.split("|")[1].split("(the steps of a call")[0])


def test_the_readme_names_the_step_spans_a_call_has(provider, tmp_path):
    """Every step of the standard chain (budgets on, so none is left out) opens the span the README names."""
    spend = Spend(SQLiteBackend(tmp_path / "spend.sqlite3"), Budgets.from_settings(day=1.0, month=None, section=None),
                  provider)  # fmt: skip
    chain = standard_chain(provider, Limits(), StaticCatalogue(MODEL), default_model=MODEL, spend=spend)
    assert readme_step_spans() == [step.span_name for step in chain.steps]
