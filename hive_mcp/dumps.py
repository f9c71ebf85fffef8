"""Failed-request dumps: one JSON file per failed call, and the store that keeps them.

The dump format lives here and nowhere else. A dump exists so a person can see
exactly what was sent when a call failed, so it keeps the whole request, but it
must never keep a credential: everything is redacted before it reaches the disk.

Layout: ``<dir>/<id>.json``, where the id (the file stem) encodes the timestamp,
error type and model, so listing, filtering and retention work from file names
and ``stat`` alone and only the files that end up on a page are ever parsed.
Temp files start with ``.`` and end with ``.tmp`` so listing never sees them.

This module deliberately imports neither litellm nor mcp: both are slow to import
and the store is needed by the CLI and tests that use neither.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import dataclasses
import errno
import functools
import json
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from secrets import token_hex
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from . import __version__ as _HIVE_MCP_VERSION

__all__ = [
    "AttemptRecord",
    "DumpCorrupt",
    "DumpLookupError",
    "DumpNotFound",
    "DumpPage",
    "DumpStore",
    "DumpSummary",
    "FailureDump",
    "InvalidCursor",
    "InvalidDumpId",
    "Outcome",
    "REDACTED",
    "default_dump_dir",
    "is_valid_dump_id",
    "make_dump_id",
    "redact",
    "strip_credentials",
]

logger = logging.getLogger("hive_mcp.dumps")

REDACTED = "[REDACTED]"
FORMAT_VERSION = 1

DEFAULT_MAX_COUNT = 500
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_AGE = timedelta(days=30)
MAX_PAGE_LIMIT = 200
MIN_SECRET_LEN = 8
"""Shorter configured secrets are ignored: redacting every "password" or "test" would gut the dump."""

STALE_TMP_AGE_S = 3600.0

Outcome = Literal["recovered", "gave_up", "not_retried"]

# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------

# Explicit ASCII classes, not \d: \d also matches other scripts' digits.
_ID_RE = re.compile(
    r"(?P<ts>[0-9]{8}T[0-9]{12}Z)\.(?P<et>[a-z0-9_]{1,40})\.(?P<slug>[A-Za-z0-9_-]{1,64})\.(?P<rand>[0-9a-f]{8})"
)
_ID_MAX_LEN = 22 + 1 + 40 + 1 + 64 + 1 + 8
_TS_LEN = 22  # YYYYmmddTHHMMSSffffffZ
_SUFFIX = ".json"
_TMP_PREFIX = ".hive-dump-"
_TMP_SUFFIX = ".tmp"
_TMP_RE = re.compile(r"\.hive-dump-[0-9a-f]{16}\.tmp")
_MAX_NAME_TRIES = 16


_SETTLED_NS = 1_000_000_000


def _id_matches(dump_id: str, error_type: str | None, slug: str | None, since_key: str | None) -> bool:
    """Whether a valid id's fields match the filters (None: any)."""
    ts, et, model_slug, _ = dump_id.split(".")
    return (
        (error_type is None or et == error_type)
        and (slug is None or model_slug == slug)
        and (since_key is None or ts >= since_key)
    )


def is_valid_dump_id(s: object) -> bool:
    """True if `s` is a well-formed dump id; safe to use as a file stem and inside a URI."""
    return isinstance(s, str) and len(s) <= _ID_MAX_LEN and _ID_RE.fullmatch(s) is not None


def _utc(dt: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ts_key(dt: datetime) -> str:
    """The id's timestamp part. Fixed width, so string order is time order."""
    u = _utc(dt)
    return (
        f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}{u.microsecond:06d}Z"
    )


def _error_slug(error_type: str) -> str:
    s = re.sub(r"[^a-z0-9_]", "_", error_type.lower())[:40]
    return s or "unknown"


def _model_slug(model: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]", "_", model)[:64]
    return s or "unknown"


def _random_suffix() -> str:
    """The id's random part; a function so tests can force collisions."""
    return token_hex(4)


def make_dump_id(timestamp: datetime, error_type: str, model: str, suffix: str | None = None) -> str:
    """Build an id: `{UTC %Y%m%dT%H%M%S%fZ}.{error_type}.{model_slug}.{8 hex}`."""
    return f"{_ts_key(timestamp)}.{_error_slug(error_type)}.{_model_slug(model)}.{suffix or _random_suffix()}"


# ---------------------------------------------------------------------------
# Credentials and redaction
# ---------------------------------------------------------------------------

_SENSITIVE_KEYS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"})
"""Dict keys whose values are always credentials (compared lower-cased, `_` read as `-`)."""

_SENSITIVE_QUERY = re.compile(r"key|token|secret|sig|password|passwd|pwd|auth|credential|session", re.I)
"""Query parameter names that look like they carry a credential (api_key, access_token, sig, ...)."""

_KEY_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{10,}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/-]{8,}=*", re.I), r"\1 " + REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"), REDACTED),  # Google
    (re.compile(r"(?<![A-Za-z0-9_-])gsk_[A-Za-z0-9]{20,}"), REDACTED),  # Groq
    (re.compile(r"(?<![A-Za-z0-9_-])hf_[A-Za-z0-9]{20,}"), REDACTED),  # Hugging Face
    (re.compile(r"(?<![A-Za-z0-9_-])(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),  # JWT
)
"""Common key shapes. None of them can match a quote or backslash, so applying
them to JSON text never breaks the JSON."""


def strip_credentials(url: str | None) -> str | None:
    """Drop userinfo, credential-looking query params and the fragment from a URL.

    An api_base is useful in a dump (which endpoint failed?) but proxies often
    carry a key in it. Anything unparseable is replaced whole rather than guessed at.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SENSITIVE_QUERY.search(k)]
        return urlunsplit((parts.scheme, host, parts.path, urlencode(query), ""))
    except ValueError:
        return REDACTED


def _normalize_secrets(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """Usable secrets, longest first so a secret containing another is replaced whole."""
    found = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN and s != REDACTED}
    return tuple(sorted(found, key=len, reverse=True))


def _redact_str(s: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    for pattern, repl in _KEY_SHAPES:
        s = pattern.sub(repl, s)
    return s


def _is_sensitive_key(key: str) -> bool:
    return key.lower().replace("_", "-") in _SENSITIVE_KEYS


def _json_safe_scalar(obj: Any) -> Any:
    """Turn what json.dumps cannot write into something it can, losing as little as possible."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    return repr(obj)


def _redact(obj: Any, secrets: tuple[str, ...]) -> Any:
    """Walk a structure, returning a JSON-safe copy with credentials replaced."""
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, str):
        return _redact_str(obj, secrets)
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="python")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = _redact_str(k if isinstance(k, str) else str(k), secrets)
            out[key] = REDACTED if _is_sensitive_key(key) else _redact(v, secrets)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_redact(v, secrets) for v in obj]
    return _redact(_json_safe_scalar(obj), secrets)


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-safe copy of `obj` with secrets, credential headers and key-shaped strings replaced."""
    return _redact(obj, _normalize_secrets(secrets))


def _json_escaped(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


# ---------------------------------------------------------------------------
# The format
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

    @field_validator("time")
    @classmethod
    def _time_utc(cls, v: datetime) -> datetime:
        return _utc(v)


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
    hive_mcp_version: str = Field(default_factory=lambda: _HIVE_MCP_VERSION)
    litellm_version: str = Field(default_factory=_litellm_version)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @field_validator("api_base")
    @classmethod
    def _api_base_clean(cls, v: str | None) -> str | None:
        # Here rather than in the store, so no FailureDump ever holds a credentialed URL.
        return strip_credentials(v)

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


class InvalidCursor(ValueError):
    """The cursor did not come from `list()`."""


def _shorten(s: object, n: int = 80) -> str:
    r = repr(s)
    return r if len(r) <= n else r[: n - 3] + "..."


def _encode_cursor(dump_id: str) -> str:
    return base64.urlsafe_b64encode(dump_id.encode("ascii")).decode("ascii").rstrip("=")


_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % (4 * _ID_MAX_LEN // 3 + 4))


def _decode_cursor(cursor: object) -> str:
    bad = InvalidCursor(
        f"invalid cursor {_shorten(cursor, 60)}: pass the next_cursor of a previous list() call unchanged"
    )
    if not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor):
        raise bad
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    if not is_valid_dump_id(decoded):
        raise bad
    return decoded


# ---------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------


def default_dump_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$HIVE_MCP_DUMP_DIR`, else `$HIVE_HOME/failed_requests`, else `~/.hive/failed_requests`."""
    if explicit := env.get("HIVE_MCP_DUMP_DIR"):
        return Path(explicit).expanduser()
    if hive_home := env.get("HIVE_HOME"):
        return Path(hive_home).expanduser() / "failed_requests"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".hive" / "failed_requests"


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------


def _unlink_quiet(path: str | os.PathLike[str]) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


# Errnos meaning "this filesystem cannot hard-link"; we then fall back to os.replace.
_NO_HARDLINK = frozenset(
    e for e in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV) if e
)


class DumpStore:
    """The dump directory: atomic, private, redacted writes; cheap listing; bounded size.

    Safe to share between threads. Several processes may share a directory too:
    names never collide and a file pruned by another process is simply skipped.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_count: int | None = DEFAULT_MAX_COUNT,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_age: timedelta | None = DEFAULT_MAX_AGE,
        secrets: Iterable[str] = (),
    ) -> None:
        if max_count is not None and max_count < 0:
            raise ValueError("max_count must be >= 0 (or None for no limit)")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must be >= 0 (or None for no limit)")
        if max_age is not None and max_age < timedelta(0):
            raise ValueError("max_age must be >= 0 (or None for no limit)")
        self.directory = Path(directory).expanduser()
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._secrets: tuple[str, ...] = _normalize_secrets(secrets)
        self._lock = threading.Lock()  # serializes prune/purge and secret updates
        self._listeners: list[Callable[[], None]] = []
        self._sorted_ids: tuple[int, list[str]] | None = None  # (directory mtime, ids): see _ids

    # -- configuration -----------------------------------------------------

    def add_secret(self, secret: str | None) -> None:
        """Never write this string. Values shorter than 8 characters are ignored."""
        with self._lock:
            self._secrets = _normalize_secrets((*self._secrets, secret))

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` whenever the set of dumps changes (write, prune, delete, purge)."""
        with self._lock:
            self._listeners = [*self._listeners, callback]

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners = [cb for cb in self._listeners if cb is not callback]

    def _notify(self) -> None:
        for cb in self._listeners:  # a snapshot: add_listener replaces the list
            try:
                cb()
            except Exception as exc:  # a broken listener must not break the call path
                logger.warning("dump listener %r failed: %s: %s", cb, type(exc).__name__, exc)

    # -- writing -----------------------------------------------------------

    def write(self, dump: FailureDump) -> str | None:
        """Store `dump` and return its id, or log one warning and return None. Never raises.

        Fills `dump.id` when it was empty. The dump may be pruned at once if it is
        already beyond the retention limits (e.g. its timestamp is older than max_age).
        """
        try:
            dump_id = self._write(dump)
        except Exception as exc:  # a failure dump must never turn into a second failure
            logger.warning(
                "could not write failure dump to %s: %s: %s", self.directory, type(exc).__name__, exc
            )
            return None
        dump.id = dump_id
        try:
            with self._lock:
                self._prune_locked()
        except Exception as exc:
            logger.warning("could not prune failure dumps in %s: %s: %s", self.directory, type(exc).__name__, exc)
        self._notify()
        return dump_id

    def _ensure_dir(self) -> None:
        d = self.directory
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.stat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d))
        geteuid = getattr(os, "geteuid", None)  # POSIX only
        if geteuid is not None and st.st_uid == geteuid() and stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(d, 0o700)

    def _serialize(self, data: dict[str, Any], dump_id: str) -> bytes:
        """JSON text of already-redacted data, with a final text-level check for secrets."""
        data["id"] = dump_id
        text = json.dumps(data, ensure_ascii=False, indent=2)
        secrets = self._secrets
        leaked = False
        for secret in secrets:
            for form in {secret, _json_escaped(secret)}:
                if form in text:
                    leaked = True
                    text = text.replace(form, REDACTED)
        for pattern, repl in _KEY_SHAPES:
            text, n = pattern.subn(repl, text)
            leaked = leaked or n > 0
        if leaked:  # the walk should have caught it; make sure the fix kept the file valid
            try:
                reparsed = json.loads(text)
            except ValueError:
                raise ValueError("redaction left invalid JSON; dump not written") from None
            if not isinstance(reparsed, dict) or reparsed.get("id") != dump_id:
                raise ValueError("redaction altered the dump id; dump not written")
            if any(s in text or _json_escaped(s) in text for s in secrets):
                raise ValueError("a secret survived redaction; dump not written")
        return text.encode("utf-8", errors="replace")

    def _write_tmp(self, payload: bytes) -> str:
        path = os.path.join(self.directory, f"{_TMP_PREFIX}{token_hex(8)}{_TMP_SUFFIX}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), 0o600)  # exact, whatever the umask
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink_quiet(path)
            raise
        return path

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some filesystems refuse fsync on directories; the rename is still atomic
        finally:
            os.close(fd)

    def _write(self, dump: FailureDump) -> str:
        self._ensure_dir()
        data = _redact(dump.model_dump(mode="python"), self._secrets)
        given = dump.id if is_valid_dump_id(dump.id) else None
        for attempt in range(_MAX_NAME_TRIES):
            if given and attempt == 0:
                dump_id = given
            else:  # from the redacted model, so a secret can never reach a file name
                dump_id = make_dump_id(dump.timestamp, data["error_type"], data["model"])
            final = os.path.join(self.directory, dump_id + _SUFFIX)
            tmp = self._write_tmp(self._serialize(data, dump_id))
            try:
                # link() fails if `final` exists, so a name is never taken twice,
                # and the full file appears under its real name in one step.
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    continue
                except OSError as exc:
                    if exc.errno not in _NO_HARDLINK:
                        raise
                    if os.path.lexists(final):  # no hard links here: best-effort exclusivity
                        continue
                    os.replace(tmp, final)
                self._fsync_dir()
                return dump_id
            finally:
                _unlink_quiet(tmp)
        raise FileExistsError(errno.EEXIST, f"no free dump name after {_MAX_NAME_TRIES} tries")

    # -- scanning ----------------------------------------------------------

    def _scan(self, *, sizes: bool = False) -> list[tuple[str, int]]:
        """(id, size) of every dump, unordered; size is 0 unless `sizes`. Never opens a file."""
        out: list[tuple[str, int]] = []
        try:
            it = os.scandir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return out
        with it:
            for entry in it:
                name = entry.name
                if not name.endswith(_SUFFIX) or name.startswith("."):
                    continue
                stem = name[: -len(_SUFFIX)]
                if not is_valid_dump_id(stem):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    size = entry.stat(follow_symlinks=False).st_size if sizes else 0
                except FileNotFoundError:  # removed under us
                    continue
                out.append((stem, size))
        return out

    def _ids(self) -> list[str]:
        """Every dump id, oldest first: ids sort by time (do not modify the list).

        Listing 10,000 dumps is mostly the directory scan, so the sorted ids are
        kept while the directory's mtime stands still: adding, renaming or removing
        a file (by this store or anyone else) changes it. mtime moves in coarse
        ticks, so a scan is kept only once the directory has been still for
        `_SETTLED_NS`: a change in the same tick as the scan cannot be missed.
        """
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return []
        kept = self._sorted_ids
        if kept is not None and kept[0] == mtime:
            return kept[1]
        ids = sorted(dump_id for dump_id, _ in self._scan())
        if time.time_ns() - mtime > _SETTLED_NS:
            self._sorted_ids = (mtime, ids)
        return ids

    def count(self) -> int:
        """How many dumps there are."""
        return len(self._ids())

    # -- retention ---------------------------------------------------------

    def prune(self) -> int:
        """Apply the retention limits now; returns how many dumps were removed."""
        with self._lock:
            removed = self._prune_locked()
        if removed:
            self._notify()
        return removed

    def _remove(self, dump_id: str) -> bool:
        return _unlink_quiet(os.path.join(self.directory, dump_id + _SUFFIX))

    def _prune_locked(self) -> int:
        entries = sorted(self._scan(sizes=True))  # oldest first: ids sort by time
        removed = 0
        keep: list[tuple[str, int]] = []
        cutoff = self._cutoff(self.max_age)
        for dump_id, size in entries:
            if cutoff is not None and dump_id[:_TS_LEN] < cutoff:
                removed += self._remove(dump_id)
            else:
                keep.append((dump_id, size))
        n, total = len(keep), sum(size for _, size in keep)
        for dump_id, size in keep:
            if (self.max_count is None or n <= self.max_count) and (self.max_bytes is None or total <= self.max_bytes):
                break
            removed += self._remove(dump_id)
            n, total = n - 1, total - size
        self._clean_tmp()
        return removed

    @staticmethod
    def _cutoff(age: timedelta | None) -> str | None:
        if age is None:
            return None
        try:
            return _ts_key(datetime.now(UTC) - age)
        except OverflowError:
            return None

    def _clean_tmp(self) -> None:
        """Remove our temp files left by a crash (older than an hour, so not in-flight writes)."""
        limit = time.time() - STALE_TMP_AGE_S
        try:
            it = os.scandir(self.directory)
        except OSError:
            return
        with it:
            for entry in it:
                if _TMP_RE.fullmatch(entry.name):
                    try:
                        if entry.stat(follow_symlinks=False).st_mtime < limit:
                            os.unlink(entry.path)
                    except FileNotFoundError:
                        pass

    def purge(self, older_than: timedelta | None = None) -> int:
        """Remove every dump, or those older than `older_than`; returns how many."""
        with self._lock:
            cutoff = None if older_than is None else self._cutoff(older_than)
            if older_than is not None and cutoff is None:
                return 0
            removed = 0
            for dump_id, _ in self._scan():
                if cutoff is None or dump_id[:_TS_LEN] < cutoff:
                    removed += self._remove(dump_id)
            self._clean_tmp()
        if removed:
            self._notify()
        return removed

    def delete(self, dump_id: str) -> bool:
        """Remove one dump; False if there was none. Malformed ids raise InvalidDumpId."""
        path = self._path_for(dump_id)
        removed = _unlink_quiet(path)
        if removed:
            self._notify()
        return removed

    # -- reading -----------------------------------------------------------

    def _path_for(self, dump_id: str) -> Path:
        """The file of `dump_id`, refusing anything that could name a file elsewhere."""
        if not is_valid_dump_id(dump_id):  # checked before any filesystem access
            raise InvalidDumpId(f"not a dump id: {_shorten(dump_id)}")
        path = self.directory / (dump_id + _SUFFIX)
        if path.resolve().parent != self.directory.resolve():
            raise InvalidDumpId(f"dump id {dump_id!r} resolves outside the dump directory")
        return path

    def _read_raw(self, dump_id: str) -> tuple[str, int]:
        """(JSON text, size from fstat). Every read of a dump file goes through here."""
        path = self._path_for(dump_id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise DumpNotFound(f"no dump {dump_id!r} (never written, deleted or pruned)") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DumpNotFound(f"no dump {dump_id!r} (not a regular file)") from None
            raise
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read()
        try:
            return raw.decode("utf-8"), size
        except UnicodeDecodeError:
            raise DumpCorrupt(f"dump {dump_id!r} is not UTF-8") from None

    def _load(self, dump_id: str) -> tuple[FailureDump, int]:
        text, size = self._read_raw(dump_id)
        try:
            return FailureDump.model_validate_json(text), size
        except ValidationError as exc:
            raise DumpCorrupt(f"dump {dump_id!r} is not a valid dump: {exc.error_count()} error(s)") from None

    def read(self, dump_id: str) -> FailureDump:
        """The dump with this id. Raises InvalidDumpId, DumpNotFound or DumpCorrupt."""
        dump, _ = self._load(dump_id)
        dump.id = dump_id  # the file name is authoritative
        return dump

    def read_text(self, dump_id: str) -> str:
        """The dump's JSON exactly as stored."""
        return self._read_raw(dump_id)[0]

    # -- listing -----------------------------------------------------------

    def _summarize(self, dump_id: str, model: str | None) -> DumpSummary | None:
        """Summary of one dump, or None if it vanished, is corrupt, or is not `model`'s."""
        try:
            dump, size = self._load(dump_id)
        except DumpNotFound:
            return None
        except DumpLookupError as exc:
            logger.warning("skipping unreadable dump %s: %s", dump_id, exc)
            return None
        if model is not None and dump.model != model:
            return None
        return DumpSummary(
            id=dump_id,
            timestamp=dump.timestamp,
            model=dump.model,
            error_type=dump.error_type,
            outcome=dump.outcome,
            attempt_count=len(dump.attempts),
            message_count=dump.message_count,
            size_bytes=size,
        )

    def list(
        self,
        *,
        error_type: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> DumpPage:
        """A page of dumps, newest first, filtered from file names; only page files are read."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}")
        after = _decode_cursor(cursor) if cursor is not None else None
        et = _error_slug(error_type) if error_type is not None else None
        slug = _model_slug(model) if model is not None else None
        since_key = _ts_key(since) if since is not None else None

        ids = self._ids()
        if after is not None:
            ids = ids[: bisect.bisect_left(ids, after)]
        newest_first: Iterable[str] = reversed(ids)
        if et is not None or slug is not None or since_key is not None:
            newest_first = (i for i in newest_first if _id_matches(i, et, slug, since_key))

        items: list[DumpSummary] = []
        more = False
        for dump_id in newest_first:
            if len(items) == limit:
                # Without a model filter the names are the truth; with one, confirm
                # that another real match exists before promising a next page.
                if model is None or self._summarize(dump_id, model) is not None:
                    more = True
                    break
                continue
            summary = self._summarize(dump_id, model)
            if summary is not None:
                items.append(summary)
        return DumpPage(items=items, next_cursor=_encode_cursor(items[-1].id) if more else None)
