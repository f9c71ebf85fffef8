"""One upstream attempt as an OpenTelemetry GenAI client span (semantic conventions for generative AI, pinned at
`SEMCONV_VERSION`): `{gen_ai.operation.name} {gen_ai.request.model}`, kind CLIENT, plus hive-mcp's own attributes.

The span starts when the attempt is sent and its outcome is set when the attempt ends; it is ended (at that
time) once the call knows its dump, so the last attempt can name it. Without a recording tracer provider (no
OpenTelemetry SDK, or no exporter configured) the span is OpenTelemetry's no-op and nothing below is computed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from ..redact import redact

__all__ = ["SEMCONV_VERSION", "AttemptSpan", "tracer"]

SEMCONV_VERSION = "1.37.0"
"""The GenAI semantic conventions these names follow (they are still in development: the version is pinned)."""

_SCHEMA = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
_TRACER = trace.get_tracer("hive_mcp", schema_url=_SCHEMA)
_METER = metrics.get_meter("hive_mcp", schema_url=_SCHEMA)
_DURATION = _METER.create_histogram(
    "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
    explicit_bucket_boundaries_advisory=[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                                         40.96, 81.92],
)  # fmt: skip
_TOKENS = _METER.create_histogram(
    "gen_ai.client.token.usage", unit="{token}", description="Measures number of input and output tokens used",
    explicit_bucket_boundaries_advisory=[1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                                         16777216, 67108864],
)  # fmt: skip


def tracer() -> trace.Tracer:
    """hive-mcp's tracer: follows whatever tracer provider the process installs, before or after this import."""
    return _TRACER


class AttemptSpan:
    """One attempt's GenAI client span. Call `succeeded` or `failed` when the attempt ends, then `end`."""

    __slots__ = ("_capture", "_metric", "_secrets", "_started", "ended_ns", "first_chunk_s", "span")

    def __init__(
        self,
        *,
        operation: str,
        provider: str,
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
        conversation_id: str | None,
        group: str | None,
        deployment: str | None,
        caller: str | None,
        attempt: int,
        messages: Sequence[Any] | None,
        secrets: Iterable[str],
        capture: bool = False,
    ) -> None:
        """`capture`: prompt (`messages`) and answer text go on the span, redacted of `secrets` as dumps are
        (`HIVE_MCP_OTEL_CAPTURE_CONTENT=on`); otherwise never."""
        self._started = time.perf_counter()
        self._capture = capture
        self.ended_ns: int | None = None
        self._secrets = secrets
        self.first_chunk_s: float | None = None
        self._metric = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider,
                        "gen_ai.request.model": model}  # fmt: skip
        self.span: Span = _TRACER.start_span(f"{operation} {model}", kind=SpanKind.CLIENT)
        if not self.span.is_recording():
            return
        attributes: dict[str, Any] = {**self._metric, "gen_ai.request.stream": stream, "hive_mcp.attempt": attempt}
        optional = {
            "gen_ai.request.max_tokens": max_tokens, "gen_ai.request.temperature": temperature,
            "gen_ai.conversation.id": conversation_id, "hive_mcp.model_group": group,
            "hive_mcp.deployment": deployment, "hive_mcp.caller": caller,
        }  # fmt: skip
        attributes.update((k, v) for k, v in optional.items() if v is not None)
        if messages is not None and capture:
            instructions, history = _input_messages(messages)
            if instructions:
                attributes["gen_ai.system_instructions"] = self._text(instructions)
            attributes["gen_ai.input.messages"] = self._text(history)
        self.span.set_attributes(attributes)

    def _text(self, content: Any) -> str:
        """`content` as the JSON string a span attribute holds, redacted of secrets as dumps are (after it is
        shaped, so a secret inside a tool call's parsed arguments is found too)."""
        return json.dumps(redact(content, self._secrets), ensure_ascii=False)

    def first_chunk(self) -> float:
        """The first chunk of a stream arrived: seconds since the attempt was sent (recorded once)."""
        if self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self._started
            if self.span.is_recording():
                self.span.set_attribute("hive_mcp.time_to_first_chunk_s", self.first_chunk_s)
        return self.first_chunk_s

    def succeeded(
        self,
        *,
        response_model: str | None,
        finish_reason: str | None,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        reasoning_tokens: int,
        cost_usd: float | None,
        answer: Any = None,
    ) -> None:
        self.ended_ns = time.time_ns()
        measured = {**self._metric, "gen_ai.response.model": response_model} if response_model else self._metric
        _DURATION.record(time.perf_counter() - self._started, measured)
        _TOKENS.record(input_tokens, {**measured, "gen_ai.token.type": "input"})
        _TOKENS.record(output_tokens, {**measured, "gen_ai.token.type": "output"})
        if not self.span.is_recording():
            return
        attributes: dict[str, Any] = {
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            "gen_ai.usage.cache_read.input_tokens": cached_tokens,
            "gen_ai.usage.reasoning.output_tokens": reasoning_tokens,
        }
        if response_model:
            attributes["gen_ai.response.model"] = response_model
        if finish_reason:
            attributes["gen_ai.response.finish_reasons"] = (finish_reason,)
        if cost_usd is not None:
            attributes["hive_mcp.cost_usd"] = cost_usd
        if answer is not None and self._capture:
            attributes["gen_ai.output.messages"] = self._text(_output_messages(answer, finish_reason))
        self.span.set_attributes(attributes)

    def failed(self, error_type: str, status: int | None) -> None:
        """The attempt failed: `error_type` is hive-mcp's category (rate_limit, timeout, ...), never a message."""
        self.ended_ns = time.time_ns()
        _DURATION.record(time.perf_counter() - self._started, {**self._metric, "error.type": error_type})
        if not self.span.is_recording():
            return
        self.span.set_attribute("error.type", error_type)
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
        self.span.set_status(StatusCode.ERROR)

    def end(self, dump_id: str | None = None) -> None:
        """End the span at the time its attempt ended (now, if it never did); `dump_id`: the call's dump."""
        if dump_id and self.span.is_recording():
            self.span.set_attribute("hive_mcp.dump_id", dump_id)
        self.span.end(end_time=self.ended_ns)


# ---------------------------------------------------------------------------
# Captured content, in the conventions' message format
# ---------------------------------------------------------------------------
# The conventions' JSON schemas (gen-ai-input-messages.json, gen-ai-output-messages.json,
# gen-ai-system-instructions.json): a message is {"role", "parts"}, an answer adds "finish_reason", and system
# instructions are a bare list of parts. The messages here are OpenAI chat messages (what litellm is sent).

_INSTRUCTION_ROLES = ("system", "developer")
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}
"""OpenAI's finish reasons the conventions spell otherwise (stop, length and content_filter are the same)."""


def _input_messages(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`gen_ai.system_instructions` and `gen_ai.input.messages` of OpenAI chat `messages`. The system prompt is
    the leading system (or developer) messages, as shaping puts the call's `system` first: hive-mcp takes it
    apart from the history, so it goes in the instructions; a system message later in the history stays there."""
    head = 0
    while head < len(messages) and _role(messages[head]) in _INSTRUCTION_ROLES:
        head += 1
    instructions = [part for message in messages[:head] for part in _parts(message)]
    return instructions, [_message(message) for message in messages[head:]]


def _output_messages(answer: Sequence[Any], finish_reason: str | None) -> list[dict[str, Any]]:
    """`gen_ai.output.messages` of OpenAI assistant messages: each also says why the generation finished (the
    schema requires it; an upstream that named no reason gives "")."""
    reason = _FINISH_REASONS.get(finish_reason or "", finish_reason or "")
    return [{**_message(message), "finish_reason": reason} for message in answer]


def _role(message: Any) -> str:
    return str(message.get("role", "")) if isinstance(message, dict) else ""


def _message(message: Any) -> dict[str, Any]:
    return {"role": _role(message), "parts": _parts(message)}


def _parts(message: Any) -> list[dict[str, Any]]:
    """A message's content as parts: text parts, other content parts (images, files) kept under their own
    `type` (the schema's generic part), a tool result as one tool_call_response part, then its tool calls."""
    if not isinstance(message, dict):
        return [{"type": "text", "content": str(message)}]
    content = message.get("content")
    if _role(message) == "tool":
        return [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts += [{"type": "text", "content": content}] if content else []
    elif isinstance(content, list):
        parts += [_content_part(part) for part in content]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                      "arguments": _arguments(function.get("arguments"))})  # fmt: skip
    return parts


def _content_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    if isinstance(part, dict) and part.get("type") == "text":
        return {"type": "text", "content": part.get("text", "")}
    return dict(part) if isinstance(part, dict) and "type" in part else {"type": "unknown", "content": part}


def _arguments(arguments: Any) -> Any:
    """A tool call's arguments as the object they encode (the conventions' examples), else as sent."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
