"""Bearer tokens for the HTTP surface, from HIVE_MCP_AUTH_TOKEN and HIVE_MCP_AUTH_TOKEN_FILE. A leaf module."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["CALLER_STATE_KEY", "bearer_tokens", "caller_name"]

CALLER_STATE_KEY = "hive_caller"
"""Where the HTTP guard leaves the caller's name in the ASGI scope's `state`, for the MCP handlers."""


def caller_name(token: bytes) -> str:
    """The name a bearer token's holder goes by (owner of its conversations): 8 hex of its SHA-256, never the token."""
    return hashlib.sha256(token).hexdigest()[:8]


def bearer_tokens(value: str | None, file: Path | None) -> tuple[str, ...]:
    """The tokens of `value` (comma-separated) and of `file` (one per line, # comments), without repeats.

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
    return tuple(dict.fromkeys(t for _, t in found))
