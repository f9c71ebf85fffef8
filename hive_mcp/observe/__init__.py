"""What an operator sees of hive-mcp without reading dumps: Prometheus metrics (`metrics`, served by `endpoint`),
OpenTelemetry spans (`tracing`, `genai`) and each call's own overhead (`overhead`).

Nothing here imports litellm, the provider or the MCP SDK: the provider and the call chain hand in plain values
(`propagation` is an MCP middleware by shape alone). prometheus-client
(extra `metrics`) and the OpenTelemetry SDK (extra `otel`) are optional; without them every record is a no-op.
"""
