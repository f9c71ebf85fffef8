"""What a failure was, and the one line that says so.

`classify` maps an exception from litellm (or the HTTP layer under it) to a
category, by litellm's exception classes first and the HTTP status second.
`clean_message` keeps the provider's own message out of litellm's wrapping:
one line, never a traceback, a JSON dump or a credential.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import aiohttp
import httpx

from ..redact import redact
from ..text import one_line
from .offline import litellm

lx = litellm.exceptions

MESSAGE_LIMIT = 240


@dataclass(frozen=True)
class ErrorClass:
    error_type: str
    retryable: bool
    status: int | None
    message: str | None = None
    """A message of our own, where the exception's text holds none worth showing."""
    answered: bool = False
    """The upstream answered (a 2xx reply) and the call could not keep the reply: one litellm could not read, one
    its content filter stopped. The provider billed it."""

    @property
    def callers(self) -> bool:
        """The request itself failed, not the deployment it went to, so the failure is never held against that
        deployment's health: too long for the model's context window, stopped by a content policy (however the
        upstream answered), or a bad request (litellm refused to build it, nothing was sent, or the upstream
        refused it with a 4xx litellm's cooldown rule holds against no deployment: `DEPLOYMENT_4XX`)."""
        if self.error_type in ("context_window", "content_policy"):
            return True
        return self.error_type == "bad_request" and self.status not in DEPLOYMENT_4XX


class ContentFiltered(Exception):
    """A reply that ended in the provider's content filter (finish_reason content_filter).

    Raised while reading the reply, so the attempt is recorded like any failure;
    `classify` makes it content_policy, never retried.
    """

    def __init__(
        self, categories: list[str], billed: Any = None, estimated: bool = False, stated: bool = False
    ) -> None:
        super().__init__(_filter_message(categories))
        self.categories = categories
        self.billed = billed
        """The reply's usage (a `base.Usage`): the provider billed the prompt it read and what it wrote."""
        self.estimated = estimated
        """`billed` is litellm's count (a stream that reported no usage), not the provider's figure."""
        self.stated = stated
        """`billed.cost_usd` is what the upstream said the reply cost (`replies.stated_cost`)."""


# Checked in order: subclasses (ContextWindowExceededError is a BadRequestError) come first.
_BY_CLASS: tuple[tuple[type[BaseException], str, bool], ...] = (
    (lx.ContextWindowExceededError, "context_window", False),
    (lx.ContentPolicyViolationError, "content_policy", False),
    (lx.RateLimitError, "rate_limit", True),
    (lx.AuthenticationError, "auth", False),
    (lx.PermissionDeniedError, "auth", False),
    (lx.NotFoundError, "not_found", False),
    (lx.Timeout, "timeout", True),
    (lx.APIConnectionError, "connection", True),
    (lx.ServiceUnavailableError, "transient", True),
    (lx.BadGatewayError, "transient", True),
    (lx.InternalServerError, "transient", True),
    (lx.BadRequestError, "bad_request", False),
    (lx.UnprocessableEntityError, "bad_request", False),
)

_TRANSIENT_STATUS = {500, 502, 503, 504, 529}
DEPLOYMENT_4XX = frozenset({401, 402, 404, 408, 429})
"""The 4xx statuses litellm's cooldown rule (`_is_cooldown_required`) holds against a deployment: a refused key, an
account out of credit, a model it does not serve, its timeout, its rate limit. Any other 4xx is the request's."""
_CONNECTION_WORDS = ("connection", "connect", "reset by peer", "remote protocol", "incomplete chunked", "peer closed")
# What litellm's own reply parsing says when it fails on a reply it got: it will fail the same way again.
_PARSE_FAILURE_WORDS = (
    "invalid response object",
    "object has no attribute",
    "stream ended before a finish_reason",
)
_PARSE_FAILURE_TYPES = (AttributeError, TypeError, KeyError, ValueError)


def classify(exc: BaseException) -> ErrorClass:
    """The category of a failure, and whether trying again may help: by litellm's exception class (a refused key,
    401 or 403, is `auth` whatever the class), else by its HTTP status.

    Rate limits and transient faults (connection refused/reset, timeouts, 500,
    502, 503, 529) are retryable; auth, bad request, context window, not found,
    content policy, and a reply that does not parse or that litellm itself could
    not take apart (`bad_response`: it would fail the same way again) are not.
    One rule for every provider, however litellm wraps the parse failure. A
    request the HTTP client refused to build or send (an api_base it cannot use,
    such as credentials in the URL beside the key's header) got no reply, so it
    is `bad_request`, not `bad_response`; so is one litellm refused as it built it (`_is_unbuilt`), which it
    raises as a connection error though nothing was sent.
    """
    if isinstance(exc, ContentFiltered):
        return ErrorClass("content_policy", False, 200, str(exc), answered=True)
    if isinstance(exc, lx.MidStreamFallbackError) and isinstance(exc.original_exception, BaseException):
        # litellm's stream wrapper re-raises what the upstream said (a 429's RateLimitError) as a 503-class
        # error carrying it: the category is what it carries.
        return classify(exc.original_exception)
    status = _status_of(exc)
    filtered = _content_filter_categories(exc)
    if filtered is not None:
        return ErrorClass("content_policy", False, status, _filter_message(filtered), answered=True)
    if _is_bad_json(exc):
        return ErrorClass("bad_response", False, status, _parse_complaint(exc), answered=True)
    found = _by_class(exc, status) or _by_status(status) or _by_transport(exc, status)
    if found.error_type in ("transient", "connection", "unknown"):
        # litellm wraps a request it refused to build, one it could not send, and its own failure to read a
        # reply, as a 500 or a connection error: none would go otherwise when tried again.
        if _is_unbuilt(exc):
            refused = f"litellm refused the request before sending it: {_unbuilt_complaint(exc)}"
            return ErrorClass("bad_request", False, None, refused)
        if _is_unsent(exc):
            return ErrorClass("bad_request", False, status, f"the request could not be sent: {clean_message(exc)}")
        if _is_parse_failure(exc):
            return ErrorClass("bad_response", False, status, answered=True)
    return found


_UNSENT_TIMEOUTS: tuple[type[BaseException], ...] = (
    httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout, aiohttp.ConnectionTimeoutError,
)


def timed_out_unsent(exc: BaseException) -> bool:
    """A timeout before the upstream had the whole request (its connection never opened, none came free from the
    pool, the body was not all written): nothing it could bill. Any other timeout (a read timeout, an error status
    408) came once the request went, and the upstream may have billed its prompt."""
    return any(isinstance(cause, _UNSENT_TIMEOUTS) for cause in _chain(exc))


def _by_class(exc: BaseException, status: int | None) -> ErrorClass | None:
    if status in (401, 403):  # refused credentials, whatever class litellm raised (Gemini's 403 is a BadRequestError)
        return ErrorClass("auth", False, status)
    for cls, error_type, retryable in _BY_CLASS:
        if isinstance(exc, cls):
            if error_type == "transient" and _looks_like_connection(exc):
                error_type = "connection"
            elif error_type == "bad_request" and _is_content_policy(exc):
                error_type = "content_policy"
            return ErrorClass(error_type, retryable, status)
    return None


def _by_status(status: int | None) -> ErrorClass | None:
    if status == 429:
        return ErrorClass("rate_limit", True, status)
    if status in _TRANSIENT_STATUS:
        return ErrorClass("transient", True, status)
    if status == 408:
        return ErrorClass("timeout", True, status)
    if status in (401, 403):
        return ErrorClass("auth", False, status)
    if status == 404:
        return ErrorClass("not_found", False, status)
    if status is not None and 400 <= status < 500:
        return ErrorClass("bad_request", False, status)
    return None


def _by_transport(exc: BaseException, status: int | None) -> ErrorClass:
    # Errors from deep in the HTTP stack (protocol errors, a connection lost mid-stream).
    transport = (httpx.TransportError, aiohttp.ClientError, ConnectionError, TimeoutError, OSError)
    if isinstance(exc, transport) or _looks_like_connection(exc):
        return ErrorClass("connection", True, status)
    return ErrorClass("unknown", False, status)


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _text(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        yield cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def _is_content_policy(exc: BaseException) -> bool:
    """Not every litellm route maps OpenAI's `content_policy_violation` code to its own class."""
    code = getattr(exc, "code", None)
    text = f"{code} {_text(exc)}".lower()
    return "content_policy" in text or "content policy" in text


def _is_bad_json(exc: BaseException) -> bool:
    """The upstream answered, but with something that is not JSON (a cut-off body, an HTML page, an
    event stream to a request that did not stream, a stream chunk that is not JSON)."""
    if any(isinstance(cause, json.JSONDecodeError) for cause in _chain(exc)):
        return True
    return _INVALID_REPLY in _text(exc).lower()


_INVALID_REPLY = "invalid response from llm endpoint"  # how litellm's OpenAI path words a body it cannot read
_RECEIVED = re.compile(r"Received: '(.*)'", re.DOTALL)
_EVENT_STREAM = re.compile(r"(?:Received: '|Original Response: |Exception - )data: ")


def _parse_complaint(exc: BaseException) -> str:
    """One line quoting the JSON parser's complaint about the reply (never the reply itself)."""
    complaint = next((str(c) for c in _chain(exc) if isinstance(c, json.JSONDecodeError)), None)
    if complaint is None:
        # litellm's OpenAI path says only "Empty or invalid response"; the body it quotes says why.
        received = _RECEIVED.search(_text(exc))
        try:
            json.loads(received.group(1) if received else "")
        except ValueError as err:
            complaint = str(err)
        else:
            complaint = "empty or invalid response"
    what = "an event stream, to a request that did not stream" if _EVENT_STREAM.search(_text(exc)) else "not JSON"
    return f"the reply did not parse ({what}): {complaint}"


# Where a request is built and sent: an error raised in one of these before any reply is the request's.
_SENDING_MODULES = ("aiohttp.", "yarl.", "httpx.", "httpcore.", "urllib.parse")


def _is_unsent(exc: BaseException) -> bool:
    """The HTTP client refused the request (a ValueError or TypeError raised while building or sending
    it, such as an unusable URL), so no reply came: not a parse failure, whatever litellm wraps it as."""
    if _is_bad_json(exc):
        return False
    for cause in _chain(exc):
        if isinstance(cause, (ValueError, TypeError)) and any(
            _module_of(frame).startswith(_SENDING_MODULES) for frame in _frames(cause.__traceback__)
        ):
            return True
    return False


# Where litellm builds a request from the messages (its checks of them, each provider's transformation, its prompt
# templates): an error raised under one of these came before anything was sent.
_BUILDING_MODULES = ("litellm.litellm_core_utils.prompt_templates.",)
# Gemini's `process_gemini_media` reads a message's media part (what it fetches is the part's own URL); its
# transform_request_body is not one of these: it also creates the upstream's context cache.
_BUILDING_FUNCTIONS = ("transform_request", "async_transform_request", "process_gemini_media")
_AT_INDEX = re.compile(r"\bmessage at index (\d+)\b", re.IGNORECASE)


def _is_unbuilt(exc: BaseException) -> bool:
    """litellm refused the request as it built it (a user message's content part of a type it does not know, as
    its `validate_chat_completion_user_messages` does), before any connection: nothing was sent. A transport
    error in the chain (a prompt template fetching an image) is the network's, not the request's."""
    chain = list(_chain(exc))
    if any(isinstance(cause, (httpx.TransportError, aiohttp.ClientError, OSError)) for cause in chain):
        return False
    return any(_builds(frame) for cause in chain for frame in _frames(cause.__traceback__))


def _builds(frame: FrameType) -> bool:
    module, name = _module_of(frame), frame.f_code.co_name
    if not module.startswith("litellm."):
        return False
    return (
        module.startswith(_BUILDING_MODULES) or name in _BUILDING_FUNCTIONS
        or (module == "litellm.utils." and name.startswith("validate"))
    )


def _unbuilt_complaint(exc: BaseException) -> str:
    """One line of why litellm refused the request; where its text names a message by index, that message as
    `messages[i]` with the first complaint litellm made of it (`invalid content type=...`)."""
    text = clean_message(exc)
    at = _AT_INDEX.search(text)
    if at is None:
        return text
    first = list(_chain(exc))[-1]
    why = clean_message(first) if first is not exc and not isinstance(first, KeyError) else text
    return f"messages[{at.group(1)}]: {why}"


def _frames(tb: TracebackType | None) -> Iterable[FrameType]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _module_of(frame: FrameType) -> str:
    name = frame.f_globals.get("__name__")
    return name + "." if isinstance(name, str) else ""


def _is_parse_failure(exc: BaseException) -> bool:
    """litellm got a reply and could not take it apart (its own AttributeError, KeyError...)."""
    if _is_bad_json(exc):
        return False
    if any(isinstance(cause, _PARSE_FAILURE_TYPES) for cause in _chain(exc)):
        return True
    text = _text(exc).lower()
    return any(word in text for word in _PARSE_FAILURE_WORDS)


def _looks_like_connection(exc: BaseException) -> bool:
    text = _text(exc).lower()
    return any(word in text for word in _CONNECTION_WORDS)


# `"hate": {"filtered": true, ...}` in a JSON body, or `'hate': {'filtered': True, ...}` in the
# Python repr of one that litellm puts into its exception text.
_FILTERED = re.compile(r"""["'](\w+)["']:\s*\{[^{}]*["']filtered["']:\s*(?:true|True)""")
_FILTER_FINISH = re.compile(r"""["']finish_reason["']:\s*["']content_filter["']""")


def _content_filter_categories(exc: BaseException) -> list[str] | None:
    """The filter categories of a reply litellm rejected because its choice ended in a content
    filter with no message (Azure's shape); None when the failure is something else."""
    text = _text(exc)
    if not _FILTER_FINISH.search(text):
        return None
    return filter_categories(text)


_USAGE = re.compile(r"""["']usage["']:\s*\{""")


def reply_usage(exc: BaseException) -> dict[str, Any] | None:
    """The `usage` object of the reply a failure's text quotes (litellm quotes a reply it could not read, as JSON
    or as its Python repr); None when it quotes none."""
    text = _text(exc)
    found = _USAGE.search(text)
    if found is None:
        return None
    start, depth = found.end() - 1, 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    quoted = text[start : end + 1]
    for read in (json.loads, ast.literal_eval):
        try:
            value = read(quoted)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        return value if isinstance(value, dict) else None
    return None


def filter_categories(text: str) -> list[str]:
    """The categories marked `filtered: true` in a reply's text (Azure's content_filter_results)."""
    return list(dict.fromkeys(_FILTERED.findall(text)))


def _filter_message(categories: list[str]) -> str:
    named = f" ({', '.join(categories)})" if categories else ""
    return f"the provider's content filter stopped the reply{named}"


_PREFIX = re.compile(r"^(?:litellm\.)?\w+(?:Error|Exception|Timeout)?:\s*", re.IGNORECASE)
# Where litellm appends its internals to a provider's message.
_INTERNALS = re.compile(r"\s*(?:Traceback \(most recent call last\)|received_args=|LiteLLM Retried:)")


def clean_message(exc: BaseException, secrets: Iterable[str] = (), limit: int = MESSAGE_LIMIT) -> str:
    """One line for humans: the upstream's own error message, without litellm's prefixes,
    raw JSON, tracebacks or anything that looks like a credential."""
    text = _text(exc) or type(exc).__name__
    # litellm wraps as "litellm.RateLimitError: RateLimitError: OpenAIException - {...json...}"
    for _ in range(4):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = re.sub(r"^\w*Exception(?:\s+\w+Error)?\s*-\s*", "", text)  # a stream's: "...Exception BadRequestError - "
    cut = _INTERNALS.search(text)
    if cut:
        text = text[: cut.start()]
    text = _unwrap_bytes(text)
    labelled = _LABELLED.match(text)  # OpenRouter's errors, as litellm words them
    if labelled:
        text = labelled.group(1)
    extracted = _message_from_json(text)
    if extracted:
        text = extracted
    text = redact(one_line(text, 4 * limit), secrets)
    return one_line(text, limit) or type(exc).__name__


def full_text(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """The exception's whole text, redacted: for the dump, never for a message."""
    return redact(f"{type(exc).__name__}: {exc}", secrets)


_LABELLED = re.compile(r"^Message: (.*?), Metadata: ")


def _unwrap_bytes(text: str) -> str:
    """A body litellm quoted as a bytes literal (`b'{\\n  "error": ...'`), as the text it holds."""
    if not text.startswith(("b'", 'b"')):
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else text


def _message_from_json(text: str) -> str | None:
    """The `message` of an error body in `text`: JSON, or the Python repr of one (the openai SDK's)."""
    start = text.find("{")
    if start < 0:
        return None
    data: Any = None
    try:
        data = json.loads(text[start:])
    except ValueError:
        try:
            data = ast.literal_eval(text[start:].strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return None
