"""The retry rule, in one place: how long to wait, and which failures are worth waiting for.

Nothing here imports litellm: errors are classified by class name and status code,
so this module stays cheap to import and easy to test.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..dumps import redact

MAX_DELAY_S = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits. `time_scale` multiplies every sleep (tests run at 1/1000 speed)."""

    max_retries: int = 10
    base_delay_s: float = 2.0
    max_delay_s: float = MAX_DELAY_S
    stream_empty_retries: int = 3
    stream_empty_delay_s: float = 1.0
    time_scale: float = 1.0


def retry_delay(headers: Mapping[str, str] | None, attempt: int, policy: RetryPolicy = RetryPolicy()) -> float:
    """Seconds to wait before retry number `attempt + 1` (attempt counts from 0).

    Order: `retry-after-ms`, then `retry-after` as seconds, then as an HTTP date,
    else exponential backoff (base x 2^attempt). Capped at `max_delay_s`; negative
    values become 0; a value that does not parse falls back to backoff.
    """
    delay = _from_headers(headers) if headers else None
    if delay is None:
        delay = policy.base_delay_s * (2**attempt)
    return min(max(delay, 0.0), policy.max_delay_s)


def _from_headers(headers: Mapping[str, str]) -> float | None:
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return when.timestamp() - time.time()


def response_headers(exc: BaseException) -> Mapping[str, str] | None:
    """The upstream's response headers carried by a litellm exception, if any.

    litellm puts them on `litellm_response_headers` for every provider; the
    openai SDK also leaves them on `response.headers`.
    """
    headers = getattr(exc, "litellm_response_headers", None)
    if headers:
        return headers
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers or None


@dataclass(frozen=True)
class ErrorClass:
    error_type: str
    retryable: bool
    status: int | None


# Checked in order: subclasses (ContextWindowExceededError is a BadRequestError) come first.
_BY_CLASS_NAME: tuple[tuple[str, str, bool], ...] = (
    ("ContextWindowExceededError", "context_window", False),
    ("ContentPolicyViolationError", "content_policy", False),
    ("RateLimitError", "rate_limit", True),
    ("AuthenticationError", "auth", False),
    ("PermissionDeniedError", "auth", False),
    ("NotFoundError", "not_found", False),
    ("Timeout", "timeout", True),
    ("APITimeoutError", "timeout", True),
    ("APIConnectionError", "connection", True),
    ("ServiceUnavailableError", "transient", True),
    ("BadGatewayError", "transient", True),
    ("InternalServerError", "transient", True),
    ("BadRequestError", "bad_request", False),
    ("UnprocessableEntityError", "bad_request", False),
    ("UnsupportedParamsError", "bad_request", False),
)

_TRANSIENT_STATUS = {500, 502, 503, 504, 529}
_CONNECTION_WORDS = ("connection", "connect", "reset by peer", "remote protocol", "incomplete chunked", "peer closed")


def classify(exc: BaseException) -> ErrorClass:
    """Map an exception from litellm (or the HTTP layer under it) to a category.

    Rate limits and transient faults (connection refused/reset, timeouts, 500,
    502, 503, 529, a reply that does not parse) are retryable; auth, bad request,
    context window, not found and content policy are not.
    """
    status = _status_of(exc)
    names = [cls.__name__ for cls in type(exc).__mro__]
    for class_name, error_type, retryable in _BY_CLASS_NAME:
        if class_name in names:
            if error_type in ("transient", "connection") and _is_bad_response(exc):
                # litellm reports a reply it could not parse as a 500 or a connection error.
                error_type = "bad_response"
            elif error_type == "transient" and _looks_like_connection(exc):
                error_type = "connection"
            elif error_type == "bad_request" and _is_content_policy(exc):
                error_type = "content_policy"
            return ErrorClass(error_type, retryable, status)
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
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or _looks_like_connection(exc):
        return ErrorClass("connection", True, status)
    # Errors from deep in the HTTP stack (httpx/aiohttp protocol errors mid-stream).
    if any(n.endswith(("ProtocolError", "ReadError", "NetworkError", "ClientPayloadError")) for n in names):
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


def _is_content_policy(exc: BaseException) -> bool:
    """Not every litellm route maps OpenAI's `content_policy_violation` code to its own class."""
    code = getattr(exc, "code", None)
    text = f"{code} {getattr(exc, 'message', '') or exc}".lower()
    return "content_policy" in text or "content policy" in text


def _is_bad_response(exc: BaseException) -> bool:
    """The upstream answered, but with something that is not a valid reply (bad JSON, an HTML page)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, json.JSONDecodeError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    text = str(getattr(exc, "message", "") or exc).lower()
    return "invalid response from llm endpoint" in text


def _looks_like_connection(exc: BaseException) -> bool:
    text = str(getattr(exc, "message", "") or exc).lower()
    return any(word in text for word in _CONNECTION_WORDS)


_PREFIX = re.compile(r"^(?:litellm\.)?\w+(?:Error|Exception|Timeout)?:\s*", re.IGNORECASE)


def clean_message(exc: BaseException, secrets: Iterable[str] = (), limit: int = 240) -> str:
    """One line for humans: the upstream's own error message, without prefixes,
    raw JSON, tracebacks or anything that looks like a credential."""
    text = str(getattr(exc, "message", "") or exc or type(exc).__name__)
    # litellm wraps as "litellm.RateLimitError: RateLimitError: OpenAIException - {...json...}"
    for _ in range(4):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = re.sub(r"^\w*Exception\s*-\s*", "", text)
    extracted = _message_from_json(text)
    if extracted:
        text = extracted
    text = " ".join(text.split())
    text = redact(text, secrets)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text or type(exc).__name__


def _message_from_json(text: str) -> str | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        data: Any = json.loads(text[start:])
    except ValueError:
        return None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return None
