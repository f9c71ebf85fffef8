"""The retry rule, in one place: how long to wait before the next attempt.

Which failures are worth waiting for is `errors.classify`. Nothing here imports
litellm, so the server can name a `RetryPolicy` without paying for that import.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

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
