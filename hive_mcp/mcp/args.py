"""Tool arguments as they arrive on the wire: the models, their checks, and how a call's raw arguments are read.

Every check lives in a model here, so a bad argument is refused before any limit
or provider is asked, as one line naming the field (`parse_args`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema, field_validator,
    model_validator,
)  # fmt: skip

from mcp.server.mcpserver import Context

from ..calls import Many
from ..dumps import ERROR_TYPES
from ..provider.base import Message
from ..provider.base import Tool as ProviderTool
from ..since import FORMS, parse_since
from ..text import short, shorten, surrogate_in
from ..defaults import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from .errors import ArgumentError, InnerError, describe_validation, field_path, json_type, safe_line

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


USER_PART_TYPES = (
    "text", "image_url", "input_audio", "audio_url", "document", "guarded_text", "grounding_source", "query",
    "video_url", "file",
)  # fmt: skip
"""The content part types a user message may hold: litellm's (`ValidUserMessageContentTypes`), which refuses any
other as it builds the request."""

PART_TYPES = (*USER_PART_TYPES, "thinking", "redacted_thinking", "tool_reference")
"""The content part types any other message may hold: litellm's for chat (`ValidChatCompletionMessageContentTypes`:
an assistant's thinking blocks too) and the tool-result block it carries through (`tool_reference`)."""


def _url_or_object(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("url"), str))


_URL = "must be a URL string or an object with a string 'url'"
_PAYLOADS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str), "must be a string"),
    "image_url": (_url_or_object, _URL),
    "video_url": (_url_or_object, _URL),
    "input_audio": (
        lambda v: isinstance(v, dict) and isinstance(v.get("data"), str) and isinstance(v.get("format"), str),
        "must be an object with string 'data' and 'format'",
    ),
    "file": (lambda v: isinstance(v, dict), "must be an object (file_id, file_data, filename)"),
}
"""A part's payload, under the key its type names, where litellm reads it without a check: what it must be, and
the error when it is not (litellm's own shapes: `ChatCompletionImageObject`, `ChatCompletionAudioObject`, ...)."""


class ToolCallFunction(BaseModel):
    name: str = Field(min_length=1)
    arguments: str = Field(default="{}", description="JSON text (or an object)")

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
    # The two nested shapes are OpenAI's and publish only their type (the bytes go to every client's
    # context); the models check them and the error names what is missing (a part's `type`, a call's
    # `id` or `function`).
    content: Annotated[str | list[ContentPart] | None, WithJsonSchema({"type": ["string", "array"]})] = None
    tool_calls: Annotated[list[MessageToolCall] | None, WithJsonSchema({"type": "array"})] = None
    tool_call_id: str | None = None  # required for role 'tool' (checked below)
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _check_content(cls, v: Any, info: ValidationInfo) -> Any:
        # Checked by hand so the error says what is wanted instead of listing union arms. A part litellm does not
        # know, or one without its payload, fails as litellm builds the request: a retryable connection error or
        # a KeyError reported as the model's failure, with a dump. Each is refused here, naming the part's field.
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list):
            raise ValueError(f"must be a string or a list of content parts, not {json_type(v)}")
        role = info.data.get("role")  # absent when the role was refused
        known = USER_PART_TYPES if role == "user" else PART_TYPES
        for i, part in enumerate(v):
            if not isinstance(part, dict):
                raise InnerError((i,), "must be an object like {'type': 'text', 'text': '...'}")
            kind = part.get("type")
            if not isinstance(kind, str) or not kind:
                raise InnerError((i, "type"), "must be a non-empty string")
            if kind not in known:
                of = f" for {'an' if role == 'assistant' else 'a'} {role} message" if role else ""
                raise InnerError((i, "type"), f"unknown part type {short(kind, 40)}{of} (one of {', '.join(known)})")
            if kind in _PAYLOADS and not _PAYLOADS[kind][0](part.get(kind)):
                raise InnerError((i, kind), _PAYLOADS[kind][1])
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

    def says_something(self) -> bool:
        """Whether the message holds anything: content other than whitespace, or tool calls."""
        if self.tool_calls:
            return True
        return bool(self.content.strip() if isinstance(self.content, str) else self.content)


_TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class ToolSpec(BaseModel):
    """A tool the model may call; passed through to the upstream for tool calling."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_TOOL_NAME)
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
    )  # a JSON schema

    @field_validator("parameters", mode="before")
    @classmethod
    def _check_parameters(cls, v: Any) -> Any:
        v = _maybe_json(v)
        if not isinstance(v, dict):
            raise ValueError(f"must be a JSON schema object, not {json_type(v)}")
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
        raise ValueError(f"must be a JSON schema with type 'object' (got type {short(schema.get('type'), 40)})")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"properties: must be an object of property schemas, not {json_type(properties)}")
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            raise ValueError(f"properties[{short(name, 40)}]: must be a schema object, not {json_type(sub)}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError("required: must be a list of property names (strings)")
    from jsonschema import Draft202012Validator, SchemaError  # on first use: 80 ms off the start-up path

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path).lstrip(".")
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}not a valid JSON schema: {shorten(exc.message, 120)}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    return v


Text = Annotated[str, AfterValidator(_not_blank)]
"""Text a call asks with (`prompt`, `judge_prompt`): only whitespace would ask nothing."""


def _no_nul(v: str) -> str:
    # No path the operating system takes holds a NUL: refused here, naming the field, rather than tripping
    # the path checks in `hive_mcp.files` (which refuse the other unusable paths, such as an over-long name).
    if "\x00" in v:
        raise ValueError("must not contain a NUL byte")
    return v


FilePath = Annotated[str, AfterValidator(_not_blank), AfterValidator(_no_nul)]
"""A path, directory or glob of `files`: what may be read is `hive_mcp.files`' to decide, after the arguments."""


def _model_name(v: str) -> str:
    # A name with a line break or another control character in it reached the routing garbled ("a b model ...
    # A B_API_KEY"), and one with a space at either end is no name a config gives (the loader strips them).
    # Refused, not trimmed: a stray character may be a different mistake than the one trimming would guess.
    # A space inside stays: a config's model_name may hold one.
    _not_blank(v)
    if v != v.strip() or not v.isprintable():
        raise ValueError(f"{short(v, 60)} is not a model name (a space at either end, or a control character)")
    return v


ModelName = Annotated[str, AfterValidator(_model_name)]
"""A model a call names (`model`, each of `models`, `judge`); whether it may be asked is the limits' to decide."""


MAX_MODELS = 8
"""The most models one call may ask at once (`models`)."""

MAX_TOKENS_ARG = 2**31 - 1
"""The largest max_tokens a call may name: what a 32-bit integer holds, as providers take it; no model writes
near as much. Past it the call is refused naming the field, before the number reaches arithmetic that fails."""


class CompleteArgs(BaseModel):
    """Arguments of `complete` and `stream_complete`. Give exactly one of `prompt` and `messages`."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)  # OpenAI chat format
    system: str | None = Field(default=None, description="This call only, never kept")
    model: ModelName | None = Field(default=None, min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[ToolSpec] | None = None
    response_format: dict[str, Any] | None = None  # e.g. {'type': 'json_object'}
    json_mode: bool = False
    max_retries: int | None = Field(default=None, ge=0, le=10)
    deadline_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # seconds, retries included
    conversation_id: str | None = Field(default=None, description="From an earlier result: continue that conversation")
    fork: bool = Field(default=False, description="Continue a copy; the original stays")
    files: list[FilePath] | None = Field(default=None, description="Paths or globs (src/**/*.py) read and sent first")
    fit: Literal["refuse", "truncate"] | None = None  # files over the model's window: refused, or the largest dropped
    models: list[ModelName] | None = Field(
        default=None, min_length=2, max_length=MAX_MODELS, description="Ask each at once"
    )
    judge: ModelName | None = Field(default=None, min_length=1, description="Model that compares the answers")
    judge_prompt: Text | None = Field(default=None, min_length=1)

    @field_validator("messages", "tools", "files", "models", mode="before")
    @classmethod
    def _parse_list(cls, v: Any, info: ValidationInfo) -> Any:
        v = _maybe_json(v)
        if v is not None and not isinstance(v, list):
            of = " of paths or globs" if info.field_name == "files" else ""
            raise ValueError(f"must be a list{of}, not {json_type(v)}")
        return v

    @field_validator("messages", mode="after")
    @classmethod
    def _something_said(cls, v: list[ChatMessage] | None) -> list[ChatMessage] | None:
        # The provider drops an assistant message with nothing in it (`_is_ghost`: some providers reject one), so
        # messages that are all empty would reach the model as none at all: refused, as a blank prompt is.
        if v is not None and not any(m.says_something() for m in v):
            raise ValueError("no message has content or tool calls")
        return v

    @field_validator("response_format", mode="before")
    @classmethod
    def _check_response_format(cls, v: Any) -> Any:
        v = _maybe_json(v)
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"must be a JSON object such as {{'type': 'json_object'}}, not {json_type(v)}")
        return v

    @field_validator("temperature", "max_tokens", "max_retries", "deadline_s", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number, not a boolean")
        return v

    @field_validator("max_tokens", mode="after")
    @classmethod
    def _in_range(cls, v: int | None) -> int | None:
        # Checked here rather than as a schema `maximum`: the bound is for safety, not for a model to read.
        if v is not None and v > MAX_TOKENS_ARG:
            raise ValueError(f"must be at most {MAX_TOKENS_ARG}")
        return v

    @model_validator(mode="after")
    def _check(self) -> CompleteArgs:
        if (self.prompt is None) == (self.messages is None):
            got = "both" if self.prompt is not None else "neither"
            raise ValueError(f"give exactly one of prompt or messages (got {got})")
        if self.fork and self.conversation_id is None:
            raise ValueError("fork: needs a conversation_id to fork")
        if self.fit is not None and not self.files:
            raise ValueError("fit: only with files")
        self._check_models()
        if self.tools:
            seen: set[str] = set()
            for i, t in enumerate(self.tools):
                if t.name in seen:
                    raise ValueError(f"tools[{i}].name: duplicate tool name '{t.name}'")
                seen.add(t.name)
        return self

    def _check_models(self) -> None:
        if self.models is not None:
            if self.model is not None:
                raise ValueError("models: give model or models, not both")
            for i, name in enumerate(self.models):
                if name in self.models[:i]:
                    raise ValueError(f"models[{i}]: {short(name)} is named twice")
        elif self.judge is not None:
            raise ValueError("judge: judges the answers of models; name them in models")
        if self.judge_prompt is not None and self.judge is None:
            raise ValueError("judge_prompt: instructs a judge; name one in judge")

    def many(self) -> Many | None:
        """The models the call asks at once, when it names them."""
        if self.models is None:
            return None
        return Many(tuple(self.models), self.judge, self.judge_prompt)

    def provider_messages(self) -> list[Message]:
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt}]
        assert self.messages is not None
        return [m.model_dump(mode="json", exclude_none=True) for m in self.messages]

    def provider_tools(self) -> list[ProviderTool] | None:
        if not self.tools:
            return None
        return [ProviderTool(name=t.name, description=t.description, parameters=t.parameters) for t in self.tools]


class StreamArgs(CompleteArgs):
    """`stream_complete`'s arguments: `complete`'s, and whether to relay reasoning too."""

    include_reasoning: bool = Field(default=False, description="Relay reasoning too, tagged 'reasoning: '/'answer: '")


class ListingArgs(BaseModel):
    """The filters and paging every listing takes, newest first (`list_failed_requests`, `list_conversations`)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    since: Annotated[datetime | None, WithJsonSchema({"type": "string", "description": "2h, 7d or ISO 8601"})] = None
    limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT)
    cursor: str | None = Field(default=None, description="next_cursor")

    @field_validator("since", mode="before")
    @classmethod
    def _parse_since(cls, v: Any) -> Any:
        if v is None or isinstance(v, datetime):
            return v
        if not isinstance(v, str):
            raise ValueError(f"must be a string: {FORMS}")
        return parse_since(v)

    @field_validator("limit", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be an integer")
        return v


class ListConversationsArgs(ListingArgs):
    """Arguments of `list_conversations`: the caller's conversations, most recently used first."""


class ListFailedRequestsArgs(ListingArgs):
    """Arguments of `list_failed_requests`: filters and paging, newest first."""

    error_type: Annotated[str | None, WithJsonSchema({"enum": list(ERROR_TYPES)})] = None

    @field_validator("error_type")
    @classmethod
    def _known_error_type(cls, v: str | None) -> str | None:
        if v is not None and v not in ERROR_TYPES:
            raise ValueError(f"unknown error type {short(v)} (known: {', '.join(ERROR_TYPES)})")
        return v


def raw_arguments(ctx: Context) -> Any:
    """The call's `arguments` as the client sent them (None when it sent none), before any validation."""
    params = ctx.request_context.params or {}
    return params.get("arguments") if isinstance(params, Mapping) else None


def _check_values(value: Any, loc: tuple[int | str, ...]) -> None:
    """Refuse, naming where it is, a value no request can carry:

    - text that is not valid Unicode (half of a surrogate pair, alone: JSON's `\\ud83d`): it could not be sent
      upstream, stored or counted;
    - a number that is not finite (JSON's `NaN`, `Infinity`, which Python's parser takes): no JSON body holds
      one, so a schema in `response_format` or `tools[].parameters` holding one would fail as the request is
      built, as a model failure with a dump.
    """
    if isinstance(value, str):
        if (half := surrogate_in(value)) is not None:
            line = f"invalid arguments: {field_path(loc)}: not valid Unicode (lone surrogate U+{ord(half):04X})"
            raise ArgumentError(safe_line(line))  # the path holds names the client chose: a safe line
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(safe_line(f"invalid arguments: {field_path(loc)}: not a finite number"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (half := surrogate_in(key)) is not None:
                where = f"{field_path(loc)}: a key" if loc else "a key"
                raise ArgumentError(f"invalid arguments: {where} is not valid Unicode (lone surrogate U+{ord(half):04X})")
            _check_values(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, (*loc, i))


def parse_args(model: type[BaseModel], ctx: Context) -> Any:
    """Validate the call's raw arguments against `model`, or raise ArgumentError.

    The raw arguments are read from the request rather than from keyword
    parameters: the SDK's argument model would re-parse JSON-looking strings (a
    prompt that is itself JSON would turn into an object) and report errors as
    multi-line pydantic text.
    """
    raw = raw_arguments(ctx)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ArgumentError("invalid arguments: expected an object")
    _check_values(raw, ())
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ArgumentError(safe_line("invalid arguments: " + describe_validation(exc))) from None
