"""The MCP layer: LLM completion tools and failed-request resources over MCP.

It talks only to the `LLMProvider` interface and the `DumpStore`; it never imports
litellm, so every provider detail (retries, dumps, key handling) stays behind them.

Public entry: `build_server(provider, store, default_model=..., limits=...)` returns
an `MCPServer`; run it with `server.run(transport=..., host=..., port=...)`.

What lives here, and why some of it sits below the high-level `MCPServer` API:

* Tools are `MCPServer` tools, defined together in `_tools()`. Each publishes the
  JSON schema of its own pydantic argument model and validates the raw arguments
  itself, so a bad argument comes back as one line naming the field (the SDK's
  own validation reports a multi-line pydantic dump).
* Cost control (`Limits`, in limits.py) is asked after the arguments validate and
  before the provider is called: allowed models, the max_tokens cap, the deadline,
  the input size, then a slot among the calls in flight. A refusal is an `isError`
  result naming the argument; nothing reaches the upstream and nothing is dumped.
* Resources are served by low-level handlers: `MCPServer` returns whole lists with
  no cursor, and `resources/list` must stay small at 10,000 dumps.
* Change notifications: the dump store calls its listeners from whatever thread
  wrote, so `_ChangeNotifier` hops onto the event loop and fans out to
  `subscriptions/listen` streams (2026-07-28) and to legacy (2025-11-25) sessions.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool as MCPTool
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourcesListChanged, ResourceUpdated
from mcp.shared.exceptions import MCPError

from . import __version__
from .dumps import DumpLookupError, DumpPage, DumpStore, DumpSummary, InvalidCursor, is_valid_dump_id, redact
from .limits import Busy, LimitError, Limits
from .provider.base import LLMProvider, LLMResponse, Message, ProviderError, ToolCall
from .provider.base import Tool as ProviderTool
from .provider.events import (
    FinishEvent,
    ReasoningDeltaEvent,
    StreamErrorEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallEvent,
)

__all__ = [
    "DUMP_URI_TEMPLATE",
    "INDEX_URI",
    "ChatMessage",
    "CompleteArgs",
    "CompletionResult",
    "FailedRequestPage",
    "FailedRequestSummary",
    "ListFailedRequestsArgs",
    "ToolSpec",
    "build_server",
    "dump_uri",
]

logger = logging.getLogger("hive_mcp.server")

INDEX_URI = "hive://failed-requests"
DUMP_URI_PREFIX = INDEX_URI + "/"
DUMP_URI_TEMPLATE = DUMP_URI_PREFIX + "{id}"

RESOURCE_NOT_FOUND_LEGACY = -32002
"""Resource-not-found in the 2025-11-25 spec. 2026-07-28 (SEP-2164) uses -32602, as the SDK does."""

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 200
DEFAULT_RESOURCE_PAGE_SIZE = 50
"""Dumps per `resources/list` page. Only the files on a page are opened, so a page costs the same at 10,000 dumps."""

PROGRESS_INTERVAL_S = 0.01
"""The least time between two `stream_complete` notifications that carry text (see `_relay_progress`)."""

MAX_ERROR_CHARS = 600
_NOTIFY_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0
_READER_SLICE_S = 0.005  # the longest a stream reader runs before letting other tasks in


def dump_uri(dump_id: str) -> str:
    """The resource URI of one failure dump."""
    return DUMP_URI_PREFIX + dump_id


# ---------------------------------------------------------------------------
# Wire shapes: tool arguments
# ---------------------------------------------------------------------------

Role = Literal["system", "developer", "user", "assistant", "tool"]


def _maybe_json(value: Any) -> Any:
    """Parse a JSON string into the object it spells.

    Some clients send nested objects as JSON text; accepting that for the
    object-typed arguments (only) saves a round trip without guessing at strings.
    """
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, (dict, list)):
            return parsed
    return value


class ContentPart(BaseModel):
    """One part of a message's content, in OpenAI form (`text`, `image_url`, ...); passed through as given."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)


class ToolCallFunction(BaseModel):
    name: str = Field(min_length=1)
    arguments: str = Field(default="{}", description="The arguments as JSON text (an object is accepted and encoded).")

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_object(cls, v: Any) -> Any:
        return json.dumps(v) if isinstance(v, dict) else v


class MessageToolCall(BaseModel):
    """A tool call the assistant made earlier in the conversation."""

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(BaseModel):
    """One chat message in OpenAI format. Unknown keys are passed through to the provider."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = Field(
        default=None, description="A string, or a list of content parts such as {'type': 'text', 'text': '...'}."
    )
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = Field(default=None, description="Required for role 'tool': the call this answers.")
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _check_content(cls, v: Any) -> Any:
        # Checked by hand so the error says what is wanted instead of listing union arms.
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list):
            raise ValueError(f"must be a string or a list of content parts, not {_json_type(v)}")
        for i, part in enumerate(v):
            if not isinstance(part, dict):
                raise ValueError(f"part {i} must be an object like {{'type': 'text', 'text': '...'}}")
            if not isinstance(part.get("type"), str) or not part["type"]:
                raise ValueError(f"part {i} needs a string 'type'")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"text part {i} needs a string 'text'")
        return v

    @model_validator(mode="after")
    def _check_shape(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs tool_call_id")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError(f"only 'assistant' messages carry tool_calls, not '{self.role}'")
        if self.content is None and self.role in ("system", "developer", "user"):
            raise ValueError(f"a '{self.role}' message needs content")
        return self


_TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class ToolSpec(BaseModel):
    """A tool the model may call; passed through to the upstream for tool calling."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_TOOL_NAME, description="Letters, digits, '_' or '-', at most 64 characters.")
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON schema (2020-12) for the arguments; its type must be 'object'.",
    )

    @field_validator("parameters", mode="before")
    @classmethod
    def _check_parameters(cls, v: Any) -> Any:
        v = _maybe_json(v)
        if not isinstance(v, dict):
            raise ValueError(f"must be a JSON schema object, not {_json_type(v)}")
        _check_parameters_schema(v)
        return v


def _check_parameters_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError naming the first problem in a tool's `parameters` schema.

    First the shape tool calling needs, with messages a person can act on: type
    'object' (or no type), `properties` an object whose values are schema objects,
    `required` a list of strings. Then the whole schema against the JSON Schema
    2020-12 meta-schema (jsonschema's `check_schema`: keyword types, valid regexes,
    known `type` names). Nothing is fetched: `$ref`s are not followed.
    """
    if schema.get("type", "object") != "object":
        raise ValueError(f"must be a JSON schema with type 'object' (got type {_short(schema.get('type'), 40)})")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"properties: must be an object of property schemas, not {_json_type(properties)}")
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            raise ValueError(f"properties[{_short(name, 40)}]: must be a schema object, not {_json_type(sub)}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError("required: must be a list of property names (strings)")
    from jsonschema import Draft202012Validator, SchemaError  # on first use: 80 ms off the start-up path

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path).lstrip(".")
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}not a valid JSON schema: {_short_text(exc.message, 120)}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


class CompleteArgs(BaseModel):
    """Arguments of `complete` and `stream_complete`. Give exactly one of `prompt` and `messages`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, description="A single user message. Use this or `messages`.")
    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="The conversation in OpenAI chat format. Use this or `prompt`."
    )
    system: str | None = Field(default=None, description="A system prompt, put before the messages.")
    model: str | None = Field(default=None, min_length=1, description="The model; the server's default if omitted.")
    max_tokens: int | None = Field(default=None, gt=0, description="Upper bound on the reply's tokens.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[ToolSpec] | None = Field(default=None, description="Tools the model may call.")
    response_format: dict[str, Any] | None = Field(
        default=None, description="Passed to the upstream as is, e.g. {'type': 'json_object'}."
    )
    json_mode: bool = Field(default=False, description="Ask for a JSON object reply.")
    max_retries: int | None = Field(
        default=None, ge=0, le=10, description="Retries of transient upstream failures; the server's policy if omitted."
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Give up after this many seconds, retries included; at most the server's deadline (its default).",
    )

    @field_validator("messages", "tools", mode="before")
    @classmethod
    def _parse_list(cls, v: Any) -> Any:
        v = _maybe_json(v)
        if v is not None and not isinstance(v, list):
            raise ValueError(f"must be a list, not {_json_type(v)}")
        return v

    @field_validator("response_format", mode="before")
    @classmethod
    def _check_response_format(cls, v: Any) -> Any:
        v = _maybe_json(v)
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"must be a JSON object such as {{'type': 'json_object'}}, not {_json_type(v)}")
        return v

    @field_validator("temperature", "max_tokens", "max_retries", "deadline_s", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number, not a boolean")
        return v

    @model_validator(mode="after")
    def _check(self) -> CompleteArgs:
        if (self.prompt is None) == (self.messages is None):
            got = "both" if self.prompt is not None else "neither"
            raise ValueError(f"give exactly one of prompt or messages (got {got})")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt: must not be empty")
        if self.tools:
            seen: set[str] = set()
            for i, t in enumerate(self.tools):
                if t.name in seen:
                    raise ValueError(f"tools[{i}].name: duplicate tool name '{t.name}'")
                seen.add(t.name)
        return self

    def provider_messages(self) -> list[Message]:
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt}]
        assert self.messages is not None
        return [m.model_dump(mode="json", exclude_none=True) for m in self.messages]

    def provider_tools(self) -> list[ProviderTool] | None:
        if not self.tools:
            return None
        return [ProviderTool(name=t.name, description=t.description, parameters=t.parameters) for t in self.tools]


class ListFailedRequestsArgs(BaseModel):
    """Arguments of `list_failed_requests`: filters and paging, newest first."""

    model_config = ConfigDict(extra="forbid")

    error_type: str | None = Field(default=None, description="Only this category, e.g. 'rate_limit' or 'auth'.")
    model: str | None = Field(default=None, description="Only this model, exactly as it appears in a listing.")
    since: datetime | None = Field(
        default=None, description="Only dumps at or after this ISO 8601 time, e.g. 2026-11-01T12:00:00Z (UTC if no offset)."
    )
    limit: int = Field(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT)
    cursor: str | None = Field(default=None, description="The next_cursor of a previous page, unchanged.")

    @field_validator("since", mode="before")
    @classmethod
    def _parse_since(cls, v: Any) -> Any:
        if v is None or isinstance(v, datetime):
            return v
        if not isinstance(v, str):
            raise ValueError("must be an ISO 8601 timestamp string such as 2026-11-01T12:00:00Z")
        try:
            return datetime.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {_short(v)} (try 2026-11-01T12:00:00Z)") from None

    @field_validator("limit", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be an integer")
        return v


# ---------------------------------------------------------------------------
# Wire shapes: tool results
# ---------------------------------------------------------------------------


class CompletionResult(BaseModel):
    """A finished completion. `attempts` > 1 or a `dump_id` means it took retries, recorded in that dump."""

    content: str
    model: str
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    tool_calls: list[ToolCall]
    attempts: int
    dump_id: str | None = None
    dump_uri: str | None = None

    @classmethod
    def from_response(cls, r: LLMResponse) -> CompletionResult:
        return cls(
            content=r.content,
            model=r.model,
            stop_reason=r.stop_reason,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cached_tokens=r.cached_tokens,
            cost_usd=r.cost_usd,
            tool_calls=r.tool_calls,
            attempts=r.attempts,
            dump_id=r.dump_id,
            dump_uri=dump_uri(r.dump_id) if r.dump_id else None,
        )


class FailedRequestSummary(BaseModel):
    """One failed call in a listing; read `uri` for the whole request."""

    id: str
    uri: str
    timestamp: datetime
    model: str
    error_type: str
    outcome: str
    attempt_count: int
    message_count: int
    size_bytes: int

    @classmethod
    def from_summary(cls, s: DumpSummary) -> FailedRequestSummary:
        return cls(uri=dump_uri(s.id), **s.model_dump())


class FailedRequestPage(BaseModel):
    """A page of failed calls, newest first. Pass `next_cursor` back for the next page."""

    items: list[FailedRequestSummary]
    next_cursor: str | None = None

    @classmethod
    def from_page(cls, page: DumpPage) -> FailedRequestPage:
        return cls(items=[FailedRequestSummary.from_summary(s) for s in page.items], next_cursor=page.next_cursor)


# ---------------------------------------------------------------------------
# Error text: one line, no traceback, no key
# ---------------------------------------------------------------------------


class ArgumentError(ValueError):
    """Bad tool arguments; `str()` is one line naming the field."""


def _json_type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


def _short(v: Any, n: int = 60) -> str:
    return _short_text(repr(v), n)


def _short_text(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapse whitespace, drop anything key-shaped, and cap the length."""
    return _short_text(re.sub(r"\s+", " ", redact(text)).strip(), limit)


def _describe_validation(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors(include_url=False)[:3]:
        loc = _loc(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown argument {loc}")
            continue
        if err["type"] == "too_short" and (err.get("ctx") or {}).get("min_length") == 1:
            msg = "must not be empty"
        if err["type"] == "literal_error" or (err["type"].endswith("_type") and not isinstance(err["input"], (dict, list))):
            msg += f" (got {_short(err['input'], 40)})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _parse_args(model: type[BaseModel], ctx: Context) -> Any:
    """Validate the call's raw arguments against `model`, or raise ArgumentError.

    The raw arguments are read from the request rather than from keyword
    parameters: the SDK's argument model would re-parse JSON-looking strings (a
    prompt that is itself JSON would turn into an object) and report errors as
    multi-line pydantic text.
    """
    params = ctx.request_context.params or {}
    raw = params.get("arguments") if isinstance(params, Mapping) else None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ArgumentError("invalid arguments: expected an object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ArgumentError(_one_line("invalid arguments: " + _describe_validation(exc))) from None


def _failure_text(line: str, dump_id: str | None) -> str:
    """The one line an upstream failure becomes: what happened, and where the dump is."""
    text = _one_line(line)
    if dump_id:
        text += f" [request recorded: {dump_uri(dump_id)}]"
    return text


def _error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _completion_result(result: CompletionResult) -> CallToolResult:
    """Structured content for clients that read the schema, the reply text for those that read only text."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.content)],
        structured_content=result.model_dump(mode="json"),
    )


# ---------------------------------------------------------------------------
# Change notifications: store thread -> event loop -> subscribers
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Waker:
    """One running event loop's way in: poke it from any thread."""

    token: Any
    thread_id: int
    event: anyio.Event = field(default_factory=anyio.Event)

    def _set(self) -> None:
        self.event.set()

    def poke(self) -> None:
        if threading.get_ident() == self.thread_id:
            self._set()
            return
        try:
            # Fire and forget: the writer never waits on the loop (which may be shutting down).
            self.token.backend_class.run_sync_soon(self._set, (), self.token.native_token)
        except Exception as exc:  # the loop is gone or closing: nobody left to tell
            logger.debug("dump change not delivered: %s: %s", type(exc).__name__, exc)


class _ChangeNotifier:
    """Tells clients when the set of dumps changes.

    2026-07-28 sessions get events on their `subscriptions/listen` streams via the
    server's subscription bus. 2025-11-25 sessions have no listen streams, so the
    sessions are remembered as they make requests and get
    `notifications/resources/list_changed` on their standalone channel (plus
    `resources/updated` for those subscribed to the index).
    """

    def __init__(self, store: DumpStore, bus: InMemorySubscriptionBus) -> None:
        self._store = store
        self._bus = bus
        self._lock = threading.Lock()
        self._wakers: list[_Waker] = []
        self._legacy: dict[Connection, set[str]] = {}

    # -- any thread --------------------------------------------------------

    def _on_store_change(self) -> None:
        with self._lock:
            waker = self._wakers[0] if self._wakers else None
        if waker is not None:  # one loop fans out, so no client hears a change twice
            waker.poke()

    # -- the event loop ----------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver changes while the server runs (entered from the server's lifespan)."""
        waker = _Waker(anyio.lowlevel.current_token(), threading.get_ident())
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, waker)
            with self._lock:
                self._wakers.append(waker)
                if len(self._wakers) == 1:
                    self._store.add_listener(self._on_store_change)
            try:
                yield
            finally:
                with self._lock:
                    self._wakers.remove(waker)
                    if not self._wakers:
                        self._store.remove_listener(self._on_store_change)
                tg.cancel_scope.cancel()

    async def _pump(self, waker: _Waker) -> None:
        while True:
            await waker.event.wait()
            waker.event = anyio.Event()  # changes during the broadcast wake us again: bursts coalesce
            try:
                await self._broadcast()
            except Exception:
                logger.exception("could not send the dump change notifications")

    async def _broadcast(self) -> None:
        await self._bus.publish(ResourcesListChanged())
        await self._bus.publish(ResourceUpdated(uri=INDEX_URI))
        for conn, uris in list(self._legacy.items()):
            with anyio.move_on_after(_NOTIFY_TIMEOUT_S):  # one stuck client must not hold up the rest
                await conn.send_resource_list_changed()
                if INDEX_URI in uris:
                    await conn.send_resource_updated(INDEX_URI)

    def track(self, ctx: ServerRequestContext[Any, Any]) -> Connection | None:
        """Remember a legacy session so it hears about changes; forgotten when it closes."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        # The SDK gives handlers no public handle on their connection; the session proxy holds it.
        conn = getattr(ctx.session, "_connection", None)
        if not isinstance(conn, Connection) or not conn.has_standalone_channel:
            return None
        if conn not in self._legacy:
            self._legacy[conn] = set()
            conn.exit_stack.callback(self._legacy.pop, conn, None)
        return conn

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self.track(ctx)
        if conn is not None:
            self._legacy[conn].discard(uri)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Track legacy sessions, and advertise resources.listChanged in their handshake."""
        result = await call_next(ctx)
        if ctx.method == "initialize":
            if isinstance(result, dict):
                caps = result.get("capabilities")
                if isinstance(caps, dict) and isinstance(caps.get("resources"), dict):
                    caps["resources"]["listChanged"] = True
        else:
            self.track(ctx)
        return result


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


@dataclass
class _StreamState:
    """What the upstream has sent so far, shared by the reader task and the notifier loop."""

    changed: anyio.Event = field(default_factory=anyio.Event)
    pending: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: FinishEvent | None = None
    error: StreamErrorEvent | None = None
    crashed: bool = False
    done: bool = False

    def add(self, ev: StreamEvent) -> None:
        if isinstance(ev, TextDeltaEvent):
            if ev.content:
                self.pending.append(ev.content)
                self.text.append(ev.content)
        elif isinstance(ev, ToolCallEvent):
            self.tool_calls.append(ToolCall(id=ev.tool_use_id, name=ev.tool_name, input=ev.tool_input))
        elif isinstance(ev, FinishEvent):
            self.finish = ev
        elif isinstance(ev, StreamErrorEvent):
            self.error = ev
        elif not isinstance(ev, ReasoningDeltaEvent):  # TextEndEvent repeats the text we already have
            return
        self.changed.set()

    def take_pending(self) -> str:
        out = "".join(self.pending)
        self.pending.clear()
        return out


async def _read_stream(events: AsyncIterator[StreamEvent], state: _StreamState) -> None:
    """Pull events off the provider's stream into `state`; always close the stream.

    On cancellation the close is what makes the upstream see its connection go,
    so it runs shielded (and bounded, so a wedged close cannot hang the server).
    """
    yielded = time.monotonic()
    try:
        async for ev in events:
            state.add(ev)
            # litellm hands over buffered chunks without ever suspending: yield now and then,
            # so the relay (and every other call) gets a turn and text goes out as it is read.
            if time.monotonic() - yielded >= _READER_SLICE_S:
                await anyio.lowlevel.checkpoint()
                yielded = time.monotonic()
    except Exception:
        logger.exception("provider stream raised")
        state.crashed = True
    finally:
        state.done = True
        state.changed.set()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
                try:
                    await aclose()
                except Exception as exc:
                    logger.debug("closing the provider stream failed: %s: %s", type(exc).__name__, exc)


async def _relay_progress(
    state: _StreamState,
    report: Callable[[float, str | None], Awaitable[None]],
    heartbeat_s: float,
    interval_s: float = PROGRESS_INTERVAL_S,
) -> None:
    """Send the new text as progress until the stream is done; a heartbeat when nothing was sent for `heartbeat_s`.

    Text goes out at once unless the previous notification left less than
    `interval_s` ago; then it waits out the rest of the interval, gathering what
    else arrives into the same notification. Chunks spaced wider than the
    interval are never delayed; a fast stream costs at most 1/interval_s
    notifications a second instead of one per chunk.
    """
    seq = 0
    last_sent = anyio.current_time()
    last_text = -math.inf
    while True:
        wait = last_sent + heartbeat_s - anyio.current_time()
        with anyio.move_on_after(max(0.0, wait)):
            await state.changed.wait()
        hold = last_text + interval_s - anyio.current_time()
        if hold > 0 and state.pending and not state.done:
            await anyio.sleep(hold)
        state.changed = anyio.Event()  # swapped before reading, so a change after this wakes the next wait
        text = state.take_pending()
        if text or anyio.current_time() >= last_sent + heartbeat_s:
            seq += 1
            await report(seq, text or None)
            last_sent = anyio.current_time()
            if text:
                last_text = last_sent
        if state.done and not state.pending:
            return


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


@dataclass
class _Handlers:
    """Everything the tools and resources need, bound once per server."""

    provider: LLMProvider
    store: DumpStore
    default_model: str
    heartbeat_s: float
    resource_page_size: int
    limits: Limits = field(default_factory=Limits)
    progress_interval_s: float = PROGRESS_INTERVAL_S
    complete_max_tokens: int | None = field(init=False)
    stream_max_tokens: int | None = field(init=False)

    def __post_init__(self) -> None:
        # What the provider sends when no max_tokens is given: the cap replaces it only when lower.
        self.complete_max_tokens = _default_max_tokens(self.provider.acomplete)
        self.stream_max_tokens = _default_max_tokens(self.provider.stream)

    # -- tools -------------------------------------------------------------

    def _prepare(self, args: CompleteArgs, default_max_tokens: int | None) -> tuple[list[Message], dict[str, Any]]:
        """The provider call for valid `args`, once every limit allows it; raises LimitError."""
        limits = self.limits
        model = limits.check_model(args.model, self.default_model)
        max_tokens = limits.max_tokens_for(args.max_tokens, default_max_tokens)
        deadline = limits.deadline_for(args.deadline_s)
        messages = args.provider_messages()
        tools = args.provider_tools()
        limits.check_input_size(
            {
                "prompt": args.prompt,
                "messages": messages if args.messages is not None else None,
                "system": args.system,
                "tools": [t.model_dump(mode="json") for t in tools] if tools else None,
            }
        )
        kwargs: dict[str, Any] = {
            "system": args.system or "",
            "tools": tools,
            "response_format": args.response_format,
            "json_mode": args.json_mode,
            "model": model,
            "deadline": deadline,
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if args.temperature is not None:
            kwargs["temperature"] = args.temperature
        if args.max_retries is not None:
            kwargs["max_retries"] = args.max_retries
        return messages, kwargs

    async def complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Run one chat completion and return the reply with its usage, cost and retry record.

        Give `prompt` (one user message) or `messages` (OpenAI chat format), not
        both. An upstream failure comes back as an error naming the category,
        model and attempts, with the recorded request's resource URI.
        """
        try:
            args = _parse_args(CompleteArgs, ctx)
            messages, kwargs = self._prepare(args, self.complete_max_tokens)
        except (ArgumentError, LimitError) as exc:
            return _error_result(str(exc))
        try:
            async with self.limits.slot():
                response = await self.provider.acomplete(messages, **kwargs)
        except Busy as exc:
            return _error_result(str(exc))
        except ProviderError as err:
            return _error_result(_failure_text(str(err), err.dump_id))
        return _completion_result(CompletionResult.from_response(response))

    async def stream_complete(self, ctx: Context) -> Annotated[CallToolResult, CompletionResult]:
        """Like `complete`, but streams: the reply's text arrives as progress notifications as it is written.

        Each notification's message is the text added since the previous one, so
        joining them gives the final content. While the upstream is silent a
        heartbeat notification (no message) keeps the call alive. Cancelling the
        call stops the upstream request.
        """
        try:
            args = _parse_args(CompleteArgs, ctx)
            messages, kwargs = self._prepare(args, self.stream_max_tokens)
        except (ArgumentError, LimitError) as exc:
            return _error_result(str(exc))

        async def report(progress: float, message: str | None) -> None:
            await ctx.report_progress(progress, None, message)

        state = _StreamState()
        try:
            async with self.limits.slot():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_read_stream, self.provider.stream(messages, **kwargs), state)
                    await _relay_progress(state, report, self.heartbeat_s, self.progress_interval_s)
        except Busy as exc:
            return _error_result(str(exc))

        if state.error is not None:
            err = state.error
            return _error_result(_failure_text(err.error, err.dump_id))
        if state.finish is None:
            return _error_result("internal error: the provider's stream ended without a result")
        fin = state.finish
        response = LLMResponse(
            **{**dataclasses.asdict(fin), "model": fin.model or kwargs["model"]},
            content="".join(state.text),
            tool_calls=state.tool_calls,
        )
        return _completion_result(CompletionResult.from_response(response))

    async def _page(self, args: ListFailedRequestsArgs) -> FailedRequestPage:
        page = await anyio.to_thread.run_sync(
            lambda: self.store.list(
                error_type=args.error_type, model=args.model, since=args.since, limit=args.limit, cursor=args.cursor
            )
        )
        return FailedRequestPage.from_page(page)

    async def list_failed_requests(self, ctx: Context) -> Annotated[CallToolResult, FailedRequestPage]:
        """List recorded failed LLM calls, newest first, with filters and paging.

        Each item's `uri` is a resource holding the whole request as sent.
        """
        try:
            args = _parse_args(ListFailedRequestsArgs, ctx)
            try:
                page = await self._page(args)
            except InvalidCursor:
                raise ArgumentError(
                    "invalid arguments: cursor: not a cursor from this listing; pass next_cursor back unchanged"
                ) from None
        except ArgumentError as exc:
            return _error_result(str(exc))
        return CallToolResult(
            content=[TextContent(type="text", text=page.model_dump_json())],
            structured_content=page.model_dump(mode="json"),
        )

    # -- resources ---------------------------------------------------------

    @staticmethod
    def _not_found(ctx: ServerRequestContext[Any, Any], uri: str, why: str) -> MCPError:
        legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        code = RESOURCE_NOT_FOUND_LEGACY if legacy else INVALID_PARAMS
        return MCPError(code=code, message=f"Resource not found: uri {_short(uri, 80)}: {why}", data={"uri": uri})

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        """The index, then the dumps newest first, one page at a time."""
        cursor = params.cursor
        try:
            page = await anyio.to_thread.run_sync(
                lambda: self.store.list(limit=self.resource_page_size, cursor=cursor)
            )
        except InvalidCursor:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data={"cursor": _short(cursor)}) from None
        resources: list[Resource] = []
        if cursor is None:
            resources.append(_index_resource())
        resources.extend(_dump_resource(s) for s in page.items)
        return ListResourcesResult(resources=resources, next_cursor=page.next_cursor)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
    ) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(
            resource_templates=[
                ResourceTemplate(
                    uri_template=DUMP_URI_TEMPLATE,
                    name="failed-request",
                    title="A failed LLM request",
                    description="Everything sent in one failed (or retried) call, with each attempt's error. "
                    "Credentials are redacted.",
                    mime_type="application/json",
                )
            ]
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        uri = params.uri
        if uri == INDEX_URI:
            page = await self._page(ListFailedRequestsArgs())
            text = page.model_dump_json(indent=2)
        elif uri.startswith(DUMP_URI_PREFIX):
            dump_id = uri[len(DUMP_URI_PREFIX) :]
            if not is_valid_dump_id(dump_id):  # refused before any filesystem access
                raise self._not_found(ctx, uri, "not a failed-request id")
            try:
                text = await anyio.to_thread.run_sync(self.store.read_text, dump_id)
            except DumpLookupError as exc:
                raise self._not_found(ctx, uri, _one_line(str(exc), 200)) from None
        else:
            raise self._not_found(ctx, uri, "unknown resource")
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=text, mime_type="application/json")])


def _default_max_tokens(method: Callable[..., Any]) -> int | None:
    """The `max_tokens` default of a provider method, or None when it has none we can read."""
    try:
        default = inspect.signature(method).parameters["max_tokens"].default
    except (KeyError, TypeError, ValueError):
        return None
    return default if isinstance(default, int) and not isinstance(default, bool) else None


def _index_resource() -> Resource:
    return Resource(
        uri=INDEX_URI,
        name="failed-requests",
        title="Failed LLM requests",
        description="The newest failed calls (the first page of list_failed_requests).",
        mime_type="application/json",
    )


def _dump_resource(s: DumpSummary) -> Resource:
    return Resource(
        uri=dump_uri(s.id),
        name=s.id,
        title=f"{s.error_type} from {s.model}",
        description=f"{s.outcome} after {s.attempt_count} attempt(s) at {s.timestamp.isoformat()}",
        mime_type="application/json",
        size=s.size_bytes,
    )


def _tool(fn: Callable[..., Any], args_model: type[BaseModel], annotations: ToolAnnotations) -> MCPTool:
    """An MCPServer tool whose input schema is `args_model`'s (the function validates the raw arguments itself)."""
    tool = MCPTool.from_function(fn, annotations=annotations)
    tool.parameters = args_model.model_json_schema()
    return tool


def _tools(h: _Handlers) -> list[MCPTool]:
    """Every tool the server offers, in one place."""
    completion = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    )
    return [
        _tool(h.complete, CompleteArgs, completion.model_copy(update={"title": "LLM completion"})),
        _tool(h.stream_complete, CompleteArgs, completion.model_copy(update={"title": "Streaming LLM completion"})),
        _tool(
            h.list_failed_requests,
            ListFailedRequestsArgs,
            ToolAnnotations(title="List failed LLM requests", read_only_hint=True, open_world_hint=False),
        ),
    ]


def build_server(
    provider: LLMProvider,
    store: DumpStore,
    *,
    default_model: str,
    heartbeat_s: float = 10.0,
    name: str = "hive-mcp",
    resource_page_size: int = DEFAULT_RESOURCE_PAGE_SIZE,
    limits: Limits | None = None,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> MCPServer:
    """Build the MCP server. Run it with `server.run(transport=..., host=..., port=...)`.

    `heartbeat_s` is how long `stream_complete` lets a call go without a progress
    notification, `progress_interval_s` the least time between two that carry
    text (faster text is gathered into one); `resource_page_size` is how many
    dumps one `resources/list` page holds; `limits` is the cost control (default:
    `Limits()`, which bounds only concurrency, deadline and input size). Use one
    `Limits` per server.
    """
    if heartbeat_s <= 0:
        raise ValueError("heartbeat_s must be > 0")
    if not 1 <= resource_page_size <= MAX_LIST_LIMIT:
        raise ValueError(f"resource_page_size must be from 1 to {MAX_LIST_LIMIT}")
    limits = limits if limits is not None else Limits()
    if not limits.model_allowed(default_model):
        logger.info("the default model %s matches no allowed pattern; it is allowed anyway", default_model)
    handlers = _Handlers(provider, store, default_model, heartbeat_s, resource_page_size, limits, progress_interval_s)
    bus = InMemorySubscriptionBus()
    notifier = _ChangeNotifier(store, bus)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with notifier.running():
            yield {}

    server: MCPServer = MCPServer(
        name,
        version=__version__,
        instructions=(
            "LLM completion: `complete` returns a reply; `stream_complete` streams it as progress "
            "notifications. Failed calls are recorded as resources under hive://failed-requests "
            "(list them with `list_failed_requests`)."
        ),
        tools=_tools(handlers),
        subscriptions=bus,
        lifespan=lifespan,
        middleware=[notifier.middleware],
    )

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        notifier.subscribe(ctx, params.uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        notifier.unsubscribe(ctx, params.uri)
        return EmptyResult()

    # MCPServer's resource handlers return whole lists with no cursor; these page.
    # (The SDK itself reaches the low-level server this way: see mcp.client.Client.)
    low = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    low.add_request_handler("resources/list", PaginatedRequestParams, handlers.list_resources)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, handlers.list_resource_templates)
    low.add_request_handler("resources/read", ReadResourceRequestParams, handlers.read_resource)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    return server
