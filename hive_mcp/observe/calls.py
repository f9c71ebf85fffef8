"""One tool call as the operator sees it, for the call chain to wrap each call in (the narrow entry point):
in flight while it runs, then counted by how it ended, its duration, tokens and cost, and its own overhead,
which `finished` returns as the result's `_meta` entry (and leaves for the HTTP header, `overhead.tell`).

    with CallWatch(tool, caller=call.caller, request=http_request) as watch:
        ...  # the chain's steps and the provider
        meta = watch.finished("ok", group=..., deployment=..., upstream_wait_s=reply.upstream_wait_s, ...)

A call left without `finished` ends as `cancelled` (cancelled, or a client gone) or `error`/`internal` (an
exception): every call is counted once, however it ends. Plain values only: no MCP, no provider types.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from . import metrics
from .overhead import CallClock, tell

__all__ = ["CallWatch"]


class CallWatch:
    """A tool call from its start to its end (a context manager); `finished` says how it ended."""

    __slots__ = ("_clock", "_done", "caller", "duration_s", "request", "tool")

    def __init__(self, tool: str, *, caller: str | None, request: Any = None) -> None:
        """`request`: the HTTP request the call came in (`ctx.request_context.request`), None over stdio."""
        self.tool, self.caller, self.request = tool, caller, request
        self._clock = CallClock()
        self._done = False
        self.duration_s = 0.0

    def __enter__(self) -> CallWatch:
        self._clock = CallClock()
        metrics.call_started(self.tool)
        return self

    def finished(
        self,
        outcome: str,
        *,
        group: str | None = None,
        deployment: str | None = None,
        error_category: str | None = None,
        upstream_wait_s: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> dict[str, float]:
        """The call ended with `outcome` (ok, error, refused); `upstream_wait_s` is what the provider waited on
        the upstream (`LLMResponse.upstream_wait_s`, `ProviderError.upstream_wait_s`; None: it never reached it).
        Returns the result's `_meta` entry telling the call's overhead (empty when it never reached the provider)."""
        self._done = True
        self.duration_s = self._clock.elapsed_s()
        overhead = None if upstream_wait_s is None else max(0.0, self.duration_s - upstream_wait_s)
        metrics.call(
            self.tool, group=group, deployment=deployment, outcome=outcome, error_category=error_category,
            duration_s=self.duration_s, overhead_s=overhead, caller=self.caller, input_tokens=input_tokens,
            output_tokens=output_tokens, cached_tokens=cached_tokens, reasoning_tokens=reasoning_tokens,
            cost_usd=cost_usd,
        )  # fmt: skip
        return {} if overhead is None else tell(self.request, overhead)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        metrics.call_finished(self.tool)
        if self._done:
            return
        if kind is None or not isinstance(exc, Exception):  # cancelled, or left without a word
            self.finished("cancelled")
        else:
            self.finished("error", error_category="internal")
