"""OpenTelemetry set up from the standard variables alone, and hive-mcp's per-step spans.

The SDK and its OTLP/HTTP exporter are the optional extra `otel`. Spans are exported only when the SDK is
installed, `OTEL_SDK_DISABLED` is not `true`, and `OTEL_TRACES_EXPORTER` (default `otlp`) names an exporter
that has somewhere to send: `otlp` with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`), or `console`
(to stderr: under stdio, stdout is the protocol's). The GenAI metrics (`genai`) follow `OTEL_METRICS_EXPORTER`
the same way. Otherwise nothing is installed: OpenTelemetry's API hands out no-op spans, which cost next to
nothing. The exporter reads the rest itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from .genai import tracer

__all__ = ["DEFAULT_SERVICE_NAME", "configure", "exporter_for", "recording", "step"]

logger = logging.getLogger("hive_mcp.observe")

DEFAULT_SERVICE_NAME = "hive-mcp"
"""`service.name` when `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) gives none."""


def exporter_for(signal: str, env: Mapping[str, str] = os.environ) -> str | None:
    """`otlp` or `console` when `signal` (`traces`, `metrics`) is to be exported, else None."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() or "otlp"
    if chosen == "otlp":
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint else None
    if chosen == "console":
        return "console"
    if chosen != "none":
        logger.warning("OTEL_%s_EXPORTER=%s: only otlp (OTLP/HTTP) and console are supported; not exporting",
                       signal.upper(), chosen)  # fmt: skip
    return None


def _resource(env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        resource = resource.merge(Resource.create({"service.name": DEFAULT_SERVICE_NAME}))
    return resource


def configure(env: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK's tracer (and meter) provider as the variables ask; True when spans are exported.
    Called once per serving process (each worker): the SDK allows one global provider."""
    traces, meters = exporter_for("traces", env), exporter_for("metrics", env)
    if traces is None and meters is None:
        return False
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        logger.warning("OpenTelemetry is configured but its SDK is not installed: pip install 'hive-mcp[otel]'")
        return False
    if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
        logger.warning("OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported; exporting with it")
    resource = _resource(env)
    if traces is not None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        if traces == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter: Any = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter(out=sys.stderr)
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    if meters is not None:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        if meters == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            metric_exporter: Any = OTLPMetricExporter()
        else:
            metric_exporter = ConsoleMetricExporter(out=sys.stderr)
        reader = PeriodicExportingMetricReader(metric_exporter)
        otel_metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    logger.info("OpenTelemetry: traces %s, metrics %s", traces or "off", meters or "off")
    return traces is not None


def recording() -> bool:
    """Whether a tracer provider is installed, now or since this import; without one every span is a no-op."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextmanager
def step(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span for one step of a call (`hive_mcp.admission`, `hive_mcp.queue`, ...), INTERNAL, in the current trace;
    each of `attributes` is set as `hive_mcp.<name>`, those that are None left out. A no-op span when nothing
    records."""
    with tracer().start_as_current_span(name, record_exception=False) as span:
        if span.is_recording():
            span.set_attributes({f"hive_mcp.{k}": v for k, v in attributes.items() if v is not None})
        yield span
