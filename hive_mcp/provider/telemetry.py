"""One call's upstream attempts as an operator sees them: a GenAI client span each (`observe.genai`), the attempt,
retry, fallback and first-chunk metrics (`observe.metrics`), and the time the call spent waiting on the upstream.

`Attempts` drives it: `begin` when an attempt is sent, `ended`/`succeeded` when it ends, `close` once the call
has its dump. Its spans open in the context the provider is called in, so they join the caller's trace.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .. import call_context
from ..observe import metrics
from ..observe.genai import AttemptSpan

if TYPE_CHECKING:
    from .base import CompletionRequest, LLMResponse

__all__ = ["CallTelemetry"]

T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def provider_and_model(model: str) -> tuple[str, str]:
    """`gen_ai.provider.name` and `gen_ai.request.model` of a litellm model string (`openai/gpt-4o-mini`)."""
    from .offline import litellm

    try:
        name, provider, _, _ = litellm.get_llm_provider(model)
        return str(provider), str(name)
    except Exception:  # noqa: BLE001 - a model litellm cannot place is still named
        provider, _, name = model.rpartition("/")
        return provider or "unknown", name


class CallTelemetry:
    """The telemetry of one call to the provider (`request`), attempt by attempt."""

    __slots__ = (
        "_capture", "_messages", "_request", "_secrets", "_stream", "current", "group", "deployment",
        "upstream_wait_s",
    )  # fmt: skip

    def __init__(
        self, request: CompletionRequest, messages: Sequence[Any], *, stream: bool, secrets: Sequence[str],
        capture: bool = False,
    ) -> None:
        """`capture`: prompt and answer text go on the spans, redacted (`HIVE_MCP_OTEL_CAPTURE_CONTENT=on`)."""
        self._capture = capture
        self._request = request
        self._messages = messages
        self._stream = stream
        self._secrets = secrets
        self.current: AttemptSpan | None = None
        self.group: str | None = None
        self.deployment: str | None = None
        self.upstream_wait_s = 0.0
        """Seconds spent waiting on the upstream: its requests and replies, and the waits it asked for (backoff,
        Retry-After). A call's own overhead is its wall time minus this."""

    async def waiting(self, awaitable: Awaitable[T]) -> T:
        """`awaitable` (a request upstream, a chunk of its reply, a backoff), its time counted as waiting on it."""
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.upstream_wait_s += time.perf_counter() - started

    def begin(self, model: str, group: str | None, deployment: str | None, number: int) -> None:
        """Attempt `number` is sent to `model` (the deployment's, when routed)."""
        self.close()
        self.group, self.deployment = group, deployment
        provider, name = provider_and_model(model)
        request, labels = self._request, call_context.current()
        self.current = AttemptSpan(
            operation="chat", provider=provider, model=name, max_tokens=request.max_tokens,
            temperature=request.temperature, stream=self._stream, conversation_id=labels.conversation_id,
            group=group, deployment=deployment, caller=labels.caller, attempt=number, messages=self._messages,
            secrets=self._secrets, capture=self._capture,
        )  # fmt: skip

    def first_chunk(self) -> None:
        if self.current is not None and self.current.first_chunk_s is None:
            metrics.first_chunk(self.group, self.deployment, self.current.first_chunk())

    def ended(self, error_type: str, status: int | None) -> None:
        """The attempt failed (or gave an empty reply) with `error_type`. A deadline that ran out between attempts
        ends none."""
        if self.current is None or self.current.ended_ns is not None:
            return
        metrics.attempt(self.group, self.deployment, "error", error_type)
        self.current.failed(error_type, status)

    def retried(self, error_type: str) -> None:
        metrics.retry(self.group, error_type)

    def fell_back(self, error_type: str) -> None:
        metrics.fallback(self.group, error_type)

    def succeeded(self, response: LLMResponse) -> None:
        response.upstream_wait_s = self.upstream_wait_s
        metrics.attempt(self.group, self.deployment, "ok")
        if self.current is None:
            return
        raw_model = getattr(response.raw_response, "model", None)
        answer: dict[str, Any] = {"role": "assistant", "content": response.content}
        if response.tool_calls:  # as OpenAI spells them, as the prompt's are: one shape for `observe.genai`
            answer["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.input}}
                for call in response.tool_calls
            ]
        self.current.succeeded(
            response_model=raw_model if isinstance(raw_model, str) else None, finish_reason=response.stop_reason,
            input_tokens=response.input_tokens, output_tokens=response.output_tokens,
            cached_tokens=response.cached_tokens, reasoning_tokens=response.reasoning_tokens,
            cost_usd=None if response.unpriced else response.cost_usd, answer=[answer],
        )  # fmt: skip

    def close(self, dump_id: str | None = None) -> None:
        """End the open attempt's span (at its own end), naming the call's dump; one never ended was cancelled
        (the call was, or its stream closed early), and is counted so: every attempt sent is counted once."""
        span, self.current = self.current, None
        if span is None:
            return
        if span.ended_ns is None:
            metrics.attempt(self.group, self.deployment, "cancelled")
            span.failed("cancelled", None)
        span.end(dump_id)
        if dump_id:
            metrics.dump_written()
