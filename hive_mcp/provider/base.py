"""The provider interface the MCP layer talks to: requests, errors, the provider; the replies it returns
are `hive_mcp.provider.response`'s (re-exported here)."""

from __future__ import annotations

import asyncio
import functools
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio
from pydantic import BaseModel, ConfigDict, Field

from .events import StreamErrorEvent, StreamEvent
from .response import LLMResponse, ToolCall, Usage  # noqa: F401 - ToolCall re-exported with the shapes

Message = dict[str, Any]
"""One chat message in OpenAI format: role, content (string or parts), tool_calls, tool_call_id."""

Cover = Callable[[Usage, Usage], Awaitable[None]]
"""A request's `cover` hook: told everything billed so far, and the part of it whose cost the upstream stated
(`Answering.stated`), before an attempt that follows a billed one."""


class PromptSize(NamedTuple):
    """What a prompt (its messages and tools) weighs in tokens, for a budget's worst case and a billed prompt:
    litellm's count for the model (`counted`), else its UTF-8 bytes, which no byte-level tokenizer exceeds."""

    tokens: int
    counted: bool
    """litellm's tokenizer counted `tokens`; False: they are the prompt's UTF-8 bytes, a bound, not a count."""

    @classmethod
    def in_bytes(cls, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> PromptSize:
        return cls(len(json.dumps([messages, tools], ensure_ascii=False).encode()), counted=False)


class Tool(BaseModel):
    """A tool the model may call; `parameters` is a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass
class Answering:
    """Where a routed call's latest attempt went, kept up to date by the provider before each attempt (a
    fallback group's included), and whether the upstream was working on it: what a call that ends without a
    response is charged at, and whether it owes its prompt. `group` and `deployment` are empty until an attempt is
    routed, and without a models config."""

    group: str | None = None
    """The group of the deployment tried last."""
    deployment: str | None = None
    """That deployment's label (provider/model), as a response's `model` names it."""
    working: bool = False
    """The upstream has the call's work in hand: the latest attempt's request went and no error status came back
    (it still runs, or the deadline cut it), it timed out once its request went (a read timeout, a 408), or its
    2xx reply was not kept and said nothing of its usage (one litellm could not read, an empty one): the call owes
    that attempt's prompt. False before any request, after any other error status, a lost connection or a connect
    timeout, after a reply whose usage the call's billed usage holds, and once the next attempt is under way (the
    prompt such an attempt owes is then in `billed`). Kept up to date without a models config too."""
    billed: Usage = field(default_factory=Usage)
    """What the provider billed so far for replies the call did not keep (each at its usage, or its prompt by
    litellm's count when it said nothing of its usage) and for attempts that timed out once their request went
    (their prompt by litellm's count): owed by a call cancelled before the retry after one, as by
    one that fails (`ProviderError.billed`)."""
    stated: Usage = field(default_factory=Usage)
    """The part of `billed` whose cost the upstream stated (`LLMResponse.cost_stated`): its `cost_usd` is what the
    caller is billed for those replies, charged as it is, whatever the price known for the model, or none."""
    estimated: int = 0
    """How many of the replies `billed` holds are litellm's count, not the provider's usage: a call charged them
    is `estimated`."""
    counted: bool = False
    """The latest attempt's reply is in `billed` at its usage (the upstream's, or litellm's count of a stream that
    reported none): the prompt it read and the text it relayed are charged there, never counted again. False
    from the moment an attempt's request goes until such a reply ends it."""


@dataclass(frozen=True)
class ModelRef:
    """A model name resolved once, for everything a call decides by it: the groups it may be answered by, each
    group's prices, its deployments and its input window. Without a models config, a litellm model string is
    its own group."""

    name: str
    """As the call names it and the provider is sent it: an alias, a group, a name a wildcard group takes, or a
    litellm model string."""
    reach: tuple[str, ...]
    """The group `name` calls (an alias resolved), then every group its fallbacks may reach."""
    prices: dict[str, tuple[float, float] | None] = field(default_factory=dict, compare=False)
    """USD per input and per output token of each group in `reach` (None: unpriced)."""
    deployments: tuple[str, ...] = ()
    """The labels (provider/model) of the called group's deployments."""
    window: int | None = None
    """The input window in tokens; None when unknown (then nothing is left out of a request)."""

    @property
    def group(self) -> str:
        """The group the name calls."""
        return self.reach[0]


class CompletionRequest(BaseModel):
    """One completion call, as every provider and every caller spells it.

    `max_retries`, `deadline` (seconds) and `model` default to the provider's own;
    `extra` holds any other litellm keyword, passed through unchanged.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    messages: list[Message]
    system: str = ""
    tools: list[Tool] | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    response_format: dict[str, Any] | None = None
    json_mode: bool = False
    model: str | None = None
    max_retries: int | None = None
    deadline: float | None = None
    include_reasoning: bool = False
    refused_groups: dict[str, str] = Field(default_factory=dict)
    """Fallback groups a budget refused -> the one-line refusal: no fallback goes there (never sent upstream)."""
    answering: Answering | None = Field(default=None, exclude=True, repr=False)
    """Filled in as the call is routed, for a caller that charges it if it ends early (never sent upstream)."""
    cover: Cover | None = Field(default=None, exclude=True, repr=False)
    """Awaited before an attempt that follows a billed one (a reply the call did not keep: an empty one, one a
    content filter stopped), with everything billed so far; raising stops the call, a `budget` ProviderError
    carrying what was billed and the exception's one line. For a caller whose hold covered one attempt only
    (never sent upstream)."""
    extra: dict[str, Any] = Field(default_factory=dict)


class ProviderError(Exception):
    """A call that failed for good. `str()` is one line: category, model, attempts; never a key."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        model: str,
        attempts: int,
        status: int | None = None,
        retryable: bool = False,
        dump_id: str | None = None,
        billed: Usage | None = None,
        upstream_wait_s: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.model = model
        self.attempts = attempts
        self.status = status
        self.retryable = retryable
        self.dump_id = dump_id
        self.billed = billed
        """The provider's usage of the replies it gave this call and the call did not keep (empty ones)."""
        self.upstream_wait_s = upstream_wait_s
        """Seconds the call spent waiting on the upstream before it failed (see `LLMResponse.upstream_wait_s`)."""

    def as_event(self) -> StreamErrorEvent:
        """This failure as the event that ends a stream."""
        return StreamErrorEvent(
            error=str(self),
            recoverable=self.retryable,
            error_type=self.error_type,
            upstream_status=self.status,
            attempts=self.attempts,
            dump_id=self.dump_id,
            model=self.model,
            billed=self.billed,
        )

    def __str__(self) -> str:
        plural = "attempt" if self.attempts == 1 else "attempts"
        return f"{self.error_type} error from model {self.model} after {self.attempts} {plural}: {self.message}"


def build_request(
    request: CompletionRequest | list[Message] | None, max_tokens: int, fields: dict[str, Any]
) -> CompletionRequest:
    """The one place a call becomes a `CompletionRequest`.

    A request passed whole is used as it is (its own max_tokens included): keyword
    fields beside it are refused (TypeError) rather than guessed to override or
    not. Otherwise the seed keyword API: fields of `CompletionRequest` go to their
    fields, any other keyword (a litellm argument such as `api_base` or `timeout`)
    to `extra`, beside what an explicit `extra=` holds.
    """
    if isinstance(request, CompletionRequest):
        if fields:
            names = ", ".join(sorted(fields))
            raise TypeError(f"{names}: pass either a CompletionRequest or keyword fields, not both")
        return request
    fields = dict(fields)
    if request is None:  # the seed API also took `messages=` by name
        if "messages" not in fields:
            raise TypeError("messages: required (or pass a CompletionRequest)")
        request = fields.pop("messages")
    known = {k: v for k, v in fields.items() if k in _KEYWORD_FIELDS}
    extra = {**(fields.pop("extra", None) or {}), **{k: v for k, v in fields.items() if k not in _KEYWORD_FIELDS}}
    return CompletionRequest(messages=list(request), max_tokens=max_tokens, extra=extra, **known)


_KEYWORD_FIELDS = frozenset(CompletionRequest.model_fields) - {"messages", "max_tokens", "extra"}

COMPLETE_MAX_TOKENS = 1024
"""`complete` and `acomplete`'s max_tokens when the keyword API gives none."""
STREAM_MAX_TOKENS = 4096
"""`stream`'s max_tokens when the keyword API gives none."""


class LLMProvider(ABC):
    """One LLM backend. Implementations own retries, empty-reply handling and failure dumps.

    The three public calls take a `CompletionRequest`, or messages plus the seed
    keyword API (`system=`, `tools=`, `max_tokens=`, `model=`, `deadline=`, ...),
    and exist here only: an implementation overrides `_acomplete` and `_stream`.
    """

    model: str

    def complete(
        self, request: CompletionRequest | list[Message] | None = None, /, *, max_tokens: int = COMPLETE_MAX_TOKENS, **fields: Any
    ) -> LLMResponse:
        """Blocking completion; raises ProviderError.

        The async path runs in an event loop of its own, so the deadline holds here
        too; called from inside a running loop, that loop runs in a worker thread.
        """
        req = build_request(request, max_tokens, fields)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return anyio.run(self._acomplete, req)
        with ThreadPoolExecutor(1, thread_name_prefix="hive-mcp-complete") as pool:
            return pool.submit(anyio.run, self._acomplete, req).result()

    async def acomplete(
        self, request: CompletionRequest | list[Message] | None = None, /, *, max_tokens: int = COMPLETE_MAX_TOKENS, **fields: Any
    ) -> LLMResponse:
        """Async completion; raises ProviderError."""
        return await self._acomplete(build_request(request, max_tokens, fields))

    def stream(
        self, request: CompletionRequest | list[Message] | None = None, /, *, max_tokens: int = STREAM_MAX_TOKENS, **fields: Any
    ) -> AsyncIterator[StreamEvent]:
        """Stream events; failures end the stream with a StreamErrorEvent instead of raising."""
        return self._stream(build_request(request, max_tokens, fields))

    async def ready(self) -> None:
        """Return once the provider can take calls, waiting (cancellably, holding no worker thread) for one
        that loads in the background. Reports no failure: a provider that could not load says so on each call.
        Call it before the blocking methods below, so they do not block a worker thread on a load."""

    def count_tokens(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        """The input tokens `messages` (and `tools`, in OpenAI form) take for `model`; None when this provider
        cannot tell. May block (CPU, or a provider still loading): call it off the event loop."""
        return None

    def prompt_size(
        self, messages: list[Message], model: str, *, tools: list[dict[str, Any]] | None = None
    ) -> PromptSize:
        """What `messages` and `tools` weigh for `model` (`PromptSize`: litellm's count, else the bytes); a
        provider that counts no tokens, their bytes. May block, as `count_tokens`: call it off the event loop."""
        return PromptSize.in_bytes(messages, tools)

    def count_text(self, text: str, model: str) -> int | None:
        """The tokens `text` (a reply, or part of one) takes for `model`; None when this provider cannot tell. May
        block: call it off the event loop."""
        return None

    def text_counter(self, model: str) -> Callable[[str], int | None]:
        """`count_text` for `model` as a function of the text alone: what reads many texts (a call's files) counts
        with. A provider whose counter can be sent to another process (pickled) returns one that can. May block."""
        return functools.partial(self.count_text, model=model)

    def max_input_tokens(self, model: str) -> int | None:
        """`model`'s input window in tokens; None when unknown (then nothing is left out of a request)."""
        return None

    def price(self, model: str, group: str | None = None) -> tuple[float, float] | None:
        """USD per input token and per output token for a call to `model` answered by `group` (default: the group
        `model` calls; a group: its dearest deployment); None when unknown. May block (a provider still loading):
        call it off the event loop."""
        return None

    def reachable(self, model: str) -> list[str]:
        """The groups a call to `model` may be answered by: its own (an alias resolved), then every group its
        fallbacks may reach. May block (a provider still loading): call it off the event loop."""
        return [model]

    def deployments(self, model: str) -> list[str]:
        """The labels (provider/model) of the deployments a call to `model` is routed among; empty when unrouted."""
        return []

    def resolve(self, model: str) -> ModelRef:
        """`model` resolved once: its reach, each group's prices, its deployments and its window. May block (a
        provider still loading): call it off the event loop."""
        reach = tuple(dict.fromkeys(self.reachable(model)))
        return ModelRef(
            name=model, reach=reach, prices={g: self.price(model, g) for g in reach},
            deployments=tuple(self.deployments(model)), window=self.max_input_tokens(model),
        )  # fmt: skip

    @abstractmethod
    async def _acomplete(self, request: CompletionRequest) -> LLMResponse:
        """One completion, retries included; raises ProviderError."""

    @abstractmethod
    def _stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """One streamed completion; ends with a FinishEvent or a StreamErrorEvent."""
