"""The OpenTelemetry SDK recording into memory, for the span tests: one tracer provider for the test process
(OpenTelemetry lets the global one be set once), its spans cleared for each test."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def memory_spans() -> InMemorySpanExporter:
    """The in-memory exporter of the process's tracer provider (installed on first use), emptied."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter


def named(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The spans called `name`, in the order they started."""
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)
