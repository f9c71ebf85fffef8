"""DeferredProvider: a provider built in a background thread, so the server answers before it exists.

Importing litellm takes seconds, longer than a desktop client waits for an MCP
server's handshake. The server is therefore built over a `DeferredProvider`:
`initialize` and `tools/list` never touch the provider, and a call that arrives
while the real provider is still loading waits for it (cancellable), then goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import anyio
import anyio.to_thread

from .base import LLMProvider, LLMResponse, Message, ProviderError, Tool
from .events import StreamEvent

__all__ = ["DeferredProvider"]

logger = logging.getLogger("hive_mcp.provider")


class DeferredProvider(LLMProvider):
    """Delegates to the provider `load()` returns; `start()` runs `load` in a daemon thread.

    A call before `start()` starts loading itself. If `load` raises, every call
    fails with a one-line `ProviderError` (category `unavailable`) and the server
    keeps serving everything else.
    """

    def __init__(self, load: Callable[[], LLMProvider], *, model: str) -> None:
        self.model = model
        self._load = load
        self._loaded = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._provider: LLMProvider | None = None
        self._error: str | None = None
        # One worker thread waits for the load; every other waiting call queues here, not in anyio's pool.
        self._waiters = anyio.CapacityLimiter(1)

    @property
    def loaded(self) -> bool:
        """Whether loading has finished (or failed)."""
        return self._loaded.is_set()

    def start(self) -> None:
        """Begin loading in a daemon thread; later calls do nothing."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run_load, name="hive-mcp-provider-load", daemon=True).start()

    def _run_load(self) -> None:
        try:
            self._provider = self._load()
        except BaseException as exc:  # noqa: BLE001 - reported on every call, the server keeps serving
            self._error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            logger.error("the LLM provider could not be loaded: %s", self._error)
        finally:
            self._loaded.set()

    def _ready_provider(self, model: str | None) -> LLMProvider:
        if self._provider is None:
            raise ProviderError(
                f"the provider could not be loaded ({self._error}); see the server's log",
                error_type="unavailable",
                model=model or self.model,
                attempts=0,
            )
        return self._provider

    def provider(self, model: str | None = None) -> LLMProvider:
        """The loaded provider, waiting for it (blocking); raises ProviderError if loading failed."""
        self.start()
        self._loaded.wait()
        return self._ready_provider(model)

    async def aprovider(self, model: str | None = None) -> LLMProvider:
        """The loaded provider, waiting for it without blocking the event loop (cancellable)."""
        if not self._loaded.is_set():
            self.start()
            async with self._waiters:
                if not self._loaded.is_set():
                    await anyio.to_thread.run_sync(self._loaded.wait, abandon_on_cancel=True)
        return self._ready_provider(model)

    # -- LLMProvider -----------------------------------------------------------

    def complete(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        return self.provider(kwargs.get("model")).complete(
            messages, system, tools, max_tokens, response_format, json_mode, max_retries, **kwargs
        )

    async def acomplete(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        provider = await self.aprovider(kwargs.get("model"))
        return await provider.acomplete(
            messages, system, tools, max_tokens, response_format, json_mode, max_retries, **kwargs
        )

    def stream(
        self,
        messages: list[Message],
        system: str = "",
        tools: list[Tool] | None = None,
        max_tokens: int = 4096,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[StreamEvent]:
        args = (messages, system, tools, max_tokens, response_format, json_mode)
        if self._provider is not None:  # loaded: the provider's own stream, no extra step per event
            return self._provider.stream(*args, **kwargs)
        return self._stream_once_loaded(args, kwargs)

    async def _stream_once_loaded(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        try:
            provider = await self.aprovider(kwargs.get("model"))
        except ProviderError as err:
            yield err.as_event()
            return
        events = provider.stream(*args, **kwargs)
        async with aclosing(events):  # closing this stream closes the provider's, and its upstream request
            async for event in events:
                yield event
