"""Bearer tokens for the HTTP surface, from HIVE_MCP_AUTH_TOKEN and HIVE_MCP_AUTH_TOKEN_FILE. A leaf module."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "CALLER_STATE_KEY", "LOCAL_CALLER", "bearer_tokens", "caller_name", "digest_name", "is_caller_name",
    "named_callers", "owner_scope",
    "split_name",
]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_NAMES: dict[bytes, str] = {}
"""SHA-256 of a named token -> its name: filled by `bearer_tokens`, read by `digest_name` (the HTTP guard).
Digests, never tokens, so the map holds nothing a reader could present."""
_NAMES_LOCK = threading.Lock()

CALLER_STATE_KEY = "hive_caller"
"""Where the HTTP guard leaves the caller's name in the ASGI scope's `state`, for the MCP handlers."""

LOCAL_CALLER = "local"
"""The caller over stdio, or over HTTP without tokens: the operator's own machine. Reserved: no token may take it."""


def owner_scope(name: str, admins: Iterable[str]) -> str | None:
    """Whose stored things (dumps, spend) `name` may see: None for everyone's (`local`, admins), else its own.

    Every view of what calls left behind asks this, so the rule is the same on every path."""
    return None if name == LOCAL_CALLER or name in admins else name


def caller_name(token: bytes) -> str:
    """The name a bearer token's holder goes by (owner of its conversations and spend): the name its
    `name:token` entry gave it, else 8 hex of its SHA-256; never the token."""
    return digest_name(hashlib.sha256(token).digest())


def digest_name(digest: bytes) -> str:
    """`caller_name` of the token whose SHA-256 is `digest`."""
    with _NAMES_LOCK:
        named = _NAMES.get(digest)
    return named if named is not None else digest.hex()[:8]


def named_callers() -> frozenset[str]:
    """The names the operator gave tokens (`name:token`), and no other caller name."""
    with _NAMES_LOCK:
        return frozenset(_NAMES.values())


def is_caller_name(name: str) -> bool:
    """Whether `name` is a name a token may give its holder: a letter, then up to 63 letters, digits, `_`, `.`, `-`."""
    return _NAME.fullmatch(name) is not None


def split_name(entry: str) -> tuple[str | None, str]:
    """`name:token` -> (name, token) when the part before the first colon is a name (a letter, then up to 63
    letters, digits, `_`, `.`, `-`); otherwise (None, entry): a bare token."""
    name, sep, token = entry.partition(":")
    if sep and token and is_caller_name(name):
        return name, token
    return None, entry


def bearer_tokens(value: str | None, file: Path | None) -> tuple[str, ...]:
    """The tokens of `value` (comma-separated) and of `file` (one per line, # comments), without repeats.

    An entry `name:token` names its token (`split_name`); the name is remembered for `caller_name` and
    the token alone is returned.

    Raises ValueError with one line naming the variable and never a token, for a
    value with no token, an unreadable or empty file, or a token that cannot
    travel in an Authorization header.
    """
    found: list[tuple[str, str]] = []
    if value is not None:
        found += [("HIVE_MCP_AUTH_TOKEN", t.strip()) for t in value.split(",") if t.strip()]
        if not found:
            raise ValueError("HIVE_MCP_AUTH_TOKEN: no token in the value (tokens are comma-separated)")
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as UTF-8 text"
            raise ValueError(f"HIVE_MCP_AUTH_TOKEN_FILE: cannot read {str(file)!r}: {why}") from None
        tokens = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not tokens:
            raise ValueError(f"HIVE_MCP_AUTH_TOKEN_FILE: no token in {str(file)!r} (one per line)")
        found += [("HIVE_MCP_AUTH_TOKEN_FILE", t) for t in tokens]
    for source in ("HIVE_MCP_AUTH_TOKEN", "HIVE_MCP_AUTH_TOKEN_FILE"):
        for n, token in enumerate((t for s, t in found if s == source), 1):
            if not all("\x21" <= c <= "\x7e" and c != "," for c in token):
                raise ValueError(
                    f"{source}: token {n} has a character that cannot be sent in an Authorization header "
                    "(use printable ASCII without spaces or commas, e.g. from `openssl rand -hex 32`)"
                )
    tokens: dict[str, None] = {}
    names: dict[str, str] = {}
    for source, entry in found:
        name, token = split_name(entry)
        if name == LOCAL_CALLER:
            raise ValueError(
                f"{source}: the name {LOCAL_CALLER!r} is reserved for the stdio user; give the token another name"
            )
        if name is not None:
            if names.setdefault(token, name) != name:
                raise ValueError(f"token named {name!r} is also named {names[token]!r}: one name per token")
        tokens[token] = None
    if len(set(names.values())) < len(names):
        dup = next(n for n in names.values() if list(names.values()).count(n) > 1)
        raise ValueError(f"the name {dup!r} is given to two tokens: one token per name")
    with _NAMES_LOCK:
        _NAMES.update({hashlib.sha256(t.encode()).digest(): n for t, n in names.items()})
    return tuple(tokens)
