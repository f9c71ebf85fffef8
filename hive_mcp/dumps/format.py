"""The dump format: ids, cursors, the dump model, the default place, and a dump writer's interface.

A dump exists so a person can see exactly what was sent when a call failed, so
it keeps the whole request; it must never keep a credential, which the writer
(`DumpStore`) guarantees by redacting everything it writes.

An id (a dump's file stem) encodes the timestamp, error type and model, so
listing, filtering and retention work from file names alone:
`{UTC %Y%m%dT%H%M%S%fZ}.{error_type}.{model_slug}.{8 hex}`. Ids sort by time.

The provider builds dumps and hands them to a `DumpWriter`; it needs this module
and nothing of the store's files.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from secrets import token_hex
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, field_validator, model_validator

from .. import __version__ as _HIVE_MCP_VERSION
from ..home import hive_home
from ..redact import strip_credentials
from ..text import shorten

FORMAT_VERSION = 1

ERROR_TYPES: tuple[str, ...] = (
    "rate_limit",
    "transient",
    "timeout",
    "connection",
    "bad_response",
    "empty_response",
    "empty_stream",
    "auth",
    "not_found",
    "bad_request",
    "context_window",
    "content_policy",
    "unavailable",
    "budget",
    "unknown",
)
"""The error types the provider records (see provider.errors): the filters of `list_failed_requests`,
`hive-mcp dumps list` and the dashboard."""

Outcome = Literal["recovered", "gave_up", "not_retried"]

# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------

# Explicit ASCII classes, not \d: \d also matches other scripts' digits.
_ID_RE = re.compile(
    r"(?P<ts>[0-9]{8}T[0-9]{12}Z)\.(?P<et>[a-z0-9_]{1,40})\.(?P<slug>[A-Za-z0-9_-]{1,64})\.(?P<rand>[0-9a-f]{8})"
)
ID_MAX_LEN = 22 + 1 + 40 + 1 + 64 + 1 + 8
TS_LEN = 22  # YYYYmmddTHHMMSSffffffZ


def id_matches(dump_id: str, error_type: str | None, slug: str | None, since_key: str | None) -> bool:
    """Whether a valid id's fields match the filters (None: any)."""
    ts, et, model_slug, _ = dump_id.split(".")
    return (
        (error_type is None or et == error_type)
        and (slug is None or model_slug == slug)
        and (since_key is None or ts >= since_key)
    )


def is_valid_dump_id(s: object) -> bool:
    """True if `s` is a well-formed dump id; safe to use as a file stem and inside a URI."""
    return isinstance(s, str) and len(s) <= ID_MAX_LEN and _ID_RE.fullmatch(s) is not None


def utc(dt: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def ts_key(dt: datetime) -> str:
    """The id's timestamp part. Fixed width, so string order is time order."""
    u = utc(dt)
    return (
        f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}{u.microsecond:06d}Z"
    )


def error_slug(error_type: str) -> str:
    s = re.sub(r"[^a-z0-9_]", "_", error_type.lower())[:40]
    return s or "unknown"


def model_slug(model: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]", "_", model)[:64]
    return s or "unknown"


def _random_suffix() -> str:
    """The id's random part; a function so tests can force collisions."""
    return token_hex(4)


def make_dump_id(timestamp: datetime, error_type: str, model: str, suffix: str | None = None) -> str:
    """Build an id: `{UTC %Y%m%dT%H%M%S%fZ}.{error_type}.{model_slug}.{8 hex}`."""
    return f"{ts_key(timestamp)}.{error_slug(error_type)}.{model_slug(model)}.{suffix or _random_suffix()}"


def default_dump_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where dumps live unless configured: `$HIVE_MCP_DUMP_DIR`, else `$HIVE_HOME/failed_requests`,
    else `~/.hive/failed_requests`."""
    if explicit := env.get("HIVE_MCP_DUMP_DIR"):
        return Path(explicit).expanduser()
    return hive_home(env) / "failed_requests"


# ---------------------------------------------------------------------------
# Cursors
# ---------------------------------------------------------------------------


class InvalidCursor(ValueError):
    """The cursor did not come from `list()`."""


def encode_cursor(dump_id: str) -> str:
    return base64.urlsafe_b64encode(dump_id.encode("ascii")).decode("ascii").rstrip("=")


_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % (4 * ID_MAX_LEN // 3 + 4))


def decode_cursor(cursor: object) -> str:
    """The id a cursor stands for; InvalidCursor for anything `encode_cursor` did not make.

    That is: base64 of a well-formed dump id, spelled as `encode_cursor` spells it (a changed character in
    the last one's unused bits decodes to the same id, yet no listing made it), whose timestamp is a time.
    A cursor for a dump that is gone is still a cursor: the listing is keyset-paged on ids, so it goes on
    from where that dump stood (see `DumpStore.list`).
    """
    bad = InvalidCursor(
        f"invalid cursor {shorten(repr(cursor), 60)}: pass the next_cursor of a previous list() call unchanged"
    )
    if not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor):
        raise bad
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    if not is_valid_dump_id(decoded) or encode_cursor(decoded) != cursor or not _is_a_time(decoded[:TS_LEN]):
        raise bad
    return decoded


def _is_a_time(key: str) -> bool:
    """Whether an id's timestamp part (`ts_key`) names a real time: its digits alone may say month 13."""
    try:
        datetime.strptime(key, "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@functools.cache
def _litellm_version() -> str:
    try:
        return version("litellm")
    except PackageNotFoundError:
        return "unknown"


class AttemptRecord(BaseModel):
    """One try at the call: what went wrong and how long we waited before the next."""

    time: datetime
    error_type: str
    status: int | None = None
    message: str = ""
    delay_s: float = 0.0
    detail: str | None = None  # the exception's whole text (redacted); `message` is its one line
    deployment: str | None = None  # routed calls: the deployment tried, provider/model (never a key or URL)
    model_group: str | None = None  # routed calls: the group that deployment belongs to

    @field_validator("time")
    @classmethod
    def _time_utc(cls, v: datetime) -> datetime:
        return utc(v)


class FailureDump(BaseModel):
    """Everything needed to see, and replay, one failed call."""

    format_version: int = FORMAT_VERSION
    id: str = ""
    timestamp: datetime
    model: str
    api_base: str | None = None
    error_type: str
    outcome: Outcome
    attempts: list[AttemptRecord]
    estimated_tokens: int = 0
    token_estimate_method: str = ""
    message_count: int = 0
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    response_format: dict[str, Any] | None = None
    request_keys: list[str] = Field(default_factory=list)
    conversation_id: str | None = None
    caller: str | None = None
    hive_mcp_version: str = Field(default_factory=lambda: _HIVE_MCP_VERSION)
    litellm_version: str = Field(default_factory=_litellm_version)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, v: datetime) -> datetime:
        return utc(v)

    @field_validator("api_base")
    @classmethod
    def _api_base_clean(cls, v: str | None) -> str | None:
        # Here rather than in the store, so no FailureDump ever holds a credentialed URL.
        return strip_credentials(v)

    @property
    def attempt_count(self) -> int:
        """How many attempts the call made, as its result counts them: `attempts` records the failed ones,
        and a recovered call made one more, the one that answered."""
        return len(self.attempts) + (1 if self.outcome == "recovered" else 0)

    @model_validator(mode="after")
    def _count_messages(self) -> FailureDump:
        if self.message_count == 0 and self.messages:
            self.message_count = len(self.messages)
        return self


class DumpSummary(BaseModel):
    """One line of a listing."""

    id: str
    timestamp: datetime
    model: str
    error_type: str
    outcome: Outcome
    attempt_count: int
    message_count: int
    size_bytes: int


class DumpPage(BaseModel):
    """A page of summaries, newest first; pass `next_cursor` back for the next page."""

    items: list[DumpSummary]
    next_cursor: str | None = None
    unavailable: str | None = None
    """Set when part of the store did not answer: one line saying which dumps the page leaves out."""


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class DumpLookupError(LookupError):
    """Base of everything `read`/`read_text`/`delete` raise, so callers catch one thing."""


class InvalidDumpId(DumpLookupError, ValueError):
    """The string is not a well-formed dump id (refused before touching the filesystem)."""


class DumpNotFound(DumpLookupError, KeyError):
    """A well-formed id with no dump behind it (never written, deleted or pruned)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DumpCorrupt(DumpLookupError, ValueError):
    """The dump file exists but is not a valid dump."""


def not_found(dump_id: str) -> DumpNotFound:
    """What an id with no dump behind it raises, and an id another caller's dump has: the same words."""
    return DumpNotFound(f"no dump {dump_id!r} (never written, deleted or pruned)")


def owned_by(dump: FailureDump, caller: str | None) -> bool:
    """Whether `caller` may see `dump`: None (admins, stdio) sees every dump; a caller sees the dumps of its own
    calls. A dump with no caller recorded (written before dumps carried one) is an admin's to see."""
    return caller is None or dump.caller == caller


# ---------------------------------------------------------------------------
# The writer's interface
# ---------------------------------------------------------------------------


class DumpWriter(Protocol):
    """Where a provider sends its failure dumps. `DumpStore` is one."""

    def write(self, dump: FailureDump) -> str | None:
        """Store `dump`, redacted; return its id, or None if it could not be written. Never raises."""
        ...

    def add_secret(self, secret: str | None) -> None:
        """Never write this string (ignored when shorter than `redact.MIN_SECRET_LEN`)."""
        ...
