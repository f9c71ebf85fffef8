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
from pydantic import ValidationError

from ..text import one_line, shorten
from .base import CompletionRequest, LLMProvider, LLMResponse, Message, ModelRef, PromptSize, ProviderError
from .events import StreamEvent

__all__ = ["DeferredProvider"]

logger = logging.getLogger("hive_mcp.provider")


def load_error(exc: BaseException) -> str:
    """One line for a failed load: the error's class and its message's first line; for a pydantic
    `ValidationError`, whose first line names only the model ("1 validation error for ModelInfo"), the model,
    then the first error's field and what is wrong with it (never its input: it may hold a key)."""
    if isinstance(exc, ValidationError) and exc.errors():
        first, more = exc.errors()[0], exc.error_count() - 1
        where = ".".join(str(p) for p in first["loc"]) or "(the whole input)"
        also = f" (and {more} more)" if more else ""
        return one_line(f"{type(exc).__name__}: {exc.title}: {where}: {first['msg']}{also}", 10_000)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class DeferredProvider(LLMProvider):
    """Delegates to the provider `load()` returns; `start()` runs `load` in a thread of its own.

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
        self._announce: str | None = None

    @property
    def loaded(self) -> bool:
        """Whether loading has finished (or failed)."""
        return self._loaded.is_set()

    def start(self, announce: str | None = None) -> None:
        """Begin loading in a thread; later calls do nothing. `announce`, when given, is an INFO line
        logged once the provider has loaded (a worker's `worker <pid>: provider loaded`).

        The thread is not a daemon, so a process stopped during the load exits once it has finished: an
        interpreter that finalizes while another thread is inside an import can wait forever for the import
        lock that thread keeps. The load is offline and bounded (litellm's import and the Router's build).
        A server stopped before then (`hive_mcp.serve`) leaves at once, without the interpreter's teardown.
        """
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._announce = announce
        threading.Thread(target=self._run_load, name="hive-mcp-provider-load").start()

    def _run_load(self) -> None:
        try:
            self._provider = self._load()
            if self._announce is not None:
                logger.info("%s", self._announce)
        except BaseException as exc:  # noqa: BLE001 - reported on every call, the server keeps serving
            self._error = shorten(load_error(exc), 300)
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

    async def ready(self) -> None:
        """Wait for the load (starting it) without blocking the event loop (cancellable)."""
        if not self._loaded.is_set():
            self.start()
            async with self._waiters:
                if not self._loaded.is_set():
                    await anyio.to_thread.run_sync(self._loaded.wait, abandon_on_cancel=True)

    async def _awaited_provider(self, model: str | None = None) -> LLMProvider:
        """The loaded provider, waiting for it without blocking the event loop (cancellable)."""
        await self.ready()
        return self._ready_provider(model)

    @property
    def waiting(self) -> int:
        """How many calls are waiting for the load right now: the one in the worker thread and those queued for it."""
        stats = self._waiters.statistics()
        return int(stats.borrowed_tokens) + stats.tasks_waiting

    # -- LLMProvider -----------------------------------------------------------

    def _loaded_provider(self) -> LLMProvider | None:
        """The provider once loaded (waiting for it: call off the event loop), None if it failed to load."""
        if not self._loaded.is_set():
            self.start()
            self._loaded.wait()
        return self._provider

    def count_tokens(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        provider = self._loaded_provider()
        return provider.count_tokens(messages, model, tools=tools) if provider is not None else None

    def prompt_size(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> PromptSize:
        provider = self._loaded_provider()
        if provider is None:
            return super().prompt_size(messages, model, tools=tools)
        return provider.prompt_size(messages, model, tools=tools)

    def count_text(self, text: str, model: str) -> int | None:
        provider = self._loaded_provider()
        return provider.count_text(text, model) if provider is not None else None

    def text_counter(self, model: str) -> Callable[[str], int | None]:
        provider = self._loaded_provider()
        return provider.text_counter(model) if provider is not None else super().text_counter(model)

    def max_input_tokens(self, model: str) -> int | None:
        provider = self._loaded_provider()
        return provider.max_input_tokens(model) if provider is not None else None

    def price(self, model: str, group: str | None = None) -> tuple[float, float] | None:
        provider = self._loaded_provider()
        return provider.price(model, group) if provider is not None else None

    def reachable(self, model: str) -> list[str]:
        provider = self._loaded_provider()
        return provider.reachable(model) if provider is not None else [model]

    def deployments(self, model: str) -> list[str]:
        provider = self._loaded_provider()
        return provider.deployments(model) if provider is not None else []

    def resolve(self, model: str) -> ModelRef:
        provider = self._loaded_provider()
        return provider.resolve(model) if provider is not None else super().resolve(model)

    async def _acomplete(self, request: CompletionRequest) -> LLMResponse:
        provider = await self._awaited_provider(request.model)
        return await provider.acomplete(request)

    def _stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        if self._provider is not None:  # loaded: the provider's own stream, no extra step per event
            return self._provider.stream(request)
        return self._stream_once_loaded(request)

    async def _stream_once_loaded(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        try:
            provider = await self._awaited_provider(request.model)
        except ProviderError as err:
            yield err.as_event()
            return
        events = provider.stream(request)
        async with aclosing(events):  # closing this stream closes the provider's, and its upstream request
            async for event in events:
                yield event
