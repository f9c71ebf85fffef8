"""Tracing: what emitting hive-mcp's spans costs a call, against the issue's target of 0.2 ms per call.

A call's spans are the call chain's steps (five INTERNAL spans: admission, conversation, metering, slot,
provider) and one GenAI CLIENT span per upstream attempt. Two pairs of rows, each pair sampled alternately in
the same run:

- `spans alone`: the spans of one call without a request (the steps nested, the attempt span begun, its reply
  recorded, ended), with the OpenTelemetry SDK recording and exporting in batches over OTLP/HTTP to a receiver
  on loopback, against the same code with no SDK installed (OpenTelemetry's no-op spans: what runs without
  the `otel` extra or an endpoint).
- `provider call`: a whole `LiteLLMProvider.acomplete` to the scripted upstream inside the five step spans,
  exporting and not.

The SDK's tracer is swapped in for hive-mcp's own (`hive_mcp.observe.genai._TRACER`) rather than installed as
the process's global provider, so the other sections of a run are not traced. Run it as a section of bench.run:
`python -m bench.run --only tracing [--quick]`.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from bench.common import USER, Row, Section, interleaved, provider
from harness.otlp import OtlpReceiver

TARGET_MS = 0.2
STEPS = ("admission", "conversation", "metering", "slot", "provider")


def _spans_of_one_call(telemetry_of: Any, reply: Any) -> float:
    from hive_mcp.observe.tracing import step

    start = time.perf_counter()
    with ExitStack() as steps:
        for name in STEPS:
            steps.enter_context(step(f"hive_mcp.{name}", caller="local"))
        telemetry = telemetry_of()
        telemetry.begin("openai/gpt-4o-mini", "openai/gpt-4o-mini", "openai/gpt-4o-mini", 1)
        telemetry.succeeded(reply)
        telemetry.close()
    return (time.perf_counter() - start) * 1000


async def run(bench: Any) -> Section:
    """The `tracing` section of bench.run (`bench` is its `bench.common.Bench`)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from hive_mcp.dumps import DumpStore
    from hive_mcp.observe import genai
    from hive_mcp.observe.tracing import step
    from hive_mcp.provider.base import CompletionRequest, LLMResponse
    from hive_mcp.provider.telemetry import CallTelemetry

    calls = bench.reps(400, 60)
    direct = provider(bench, DumpStore(bench.dir("tracing") / "dumps"))
    request = CompletionRequest(messages=USER, caller="local")
    reply = LLMResponse(content="ok", model="gpt-4o-mini", stop_reason="stop", input_tokens=11, output_tokens=7)
    untraced = genai._TRACER  # noqa: SLF001 - the bench swaps the tracer the package hands out
    with OtlpReceiver() as receiver:
        sdk = TracerProvider()
        sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")))
        traced = sdk.get_tracer("hive_mcp")

        def using(tracer: Any, sample: Any) -> Any:
            async def sampled() -> float:
                genai._TRACER = tracer  # noqa: SLF001
                try:
                    return await sample()
                finally:
                    genai._TRACER = untraced  # noqa: SLF001

            return sampled

        async def spans_alone() -> float:
            return _spans_of_one_call(lambda: CallTelemetry(request, USER, stream=False, secrets=()), reply)

        async def provider_call() -> float:
            start = time.perf_counter()
            with ExitStack() as steps:
                for name in STEPS:
                    steps.enter_context(step(f"hive_mcp.{name}", caller="local"))
                await direct.acomplete(USER)
            return (time.perf_counter() - start) * 1000

        samples = await interleaved(
            {
                "spans alone: no SDK": using(untraced, spans_alone),
                "spans alone: exported (OTLP/HTTP)": using(traced, spans_alone),
                "provider call: no SDK": using(untraced, provider_call),
                "provider call: exported (OTLP/HTTP)": using(traced, provider_call),
            },
            calls,
            warmup=20,
        )
        sdk.shutdown()  # flushes: every span reached the receiver
        exported = len(receiver.spans)
    rows = [Row(name, "ms", s) for name, s in samples.items()]
    by_name = {row.name: row for row in rows}
    for kind in ("spans alone", "provider call"):
        on, off = by_name[f"{kind}: exported (OTLP/HTTP)"], by_name[f"{kind}: no SDK"]
        cost = [max(0.0, a - b) for a, b in zip(sorted(on.samples), sorted(off.samples), strict=True)]
        rows.append(Row(f"{kind}: tracing cost per call", "ms", cost).at_most(TARGET_MS, "0.2 ms (issue 25)"))
    return Section("tracing", rows, details={"spans_exported": exported, "spans_per_call": len(STEPS) + 1})
