"""An OTLP/HTTP trace receiver on 127.0.0.1: what a collector would get from a server exporting spans
(`OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url`). Each span is kept as a dict (name, ids as hex, kind, attributes);
`wait_for` waits on an event, set as each export arrives. No pytest here: `bench/` may use it too."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

Span = dict[str, Any]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/traces":
                    receiver._add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="otlp-receiver")

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found = [
            {
                "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                "parent_span_id": span.parent_span_id.hex(), "kind": span.kind,
                "service": next((_value(a.value) for a in rs.resource.attributes if a.key == "service.name"), None),
                "attributes": {a.key: _value(a.value) for a in span.attributes},
            }
            for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
        ]  # fmt: skip
        with self._changed:
            self.spans.extend(found)
            self._changed.notify_all()

    def wait_for(self, match: Callable[[Span], bool], timeout: float) -> Span | None:
        """The first span `match` accepts, waiting up to `timeout` seconds for it to be exported."""
        with self._changed:
            self._changed.wait_for(lambda: any(match(s) for s in self.spans), timeout)
            return next((s for s in self.spans if match(s)), None)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
