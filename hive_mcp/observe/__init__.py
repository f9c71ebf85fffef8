"""What an operator sees of hive-mcp without reading dumps: Prometheus metrics (`metrics`, served by `endpoint`),
OpenTelemetry spans (`tracing`, `genai`) and each call's own overhead (`overhead`).

Nothing here knows MCP or litellm: the provider and the call chain hand in plain values. prometheus-client
(extra `metrics`) and the OpenTelemetry SDK (extra `otel`) are optional; without them every record is a no-op.
"""
