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


_reader = None


def memory_metrics():
    """The in-memory reader of the process's meter provider (installed on first use): `metric_points(reader)`
    reads what was recorded since the process began (histograms are cumulative)."""
    global _reader
    if _reader is None:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        _reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
    return _reader


def metric_points(reader, name: str) -> list:
    """Every data point of the metric `name` the reader holds now."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics
        if metric.name == name for point in metric.data.data_points
    ]  # fmt: skip
