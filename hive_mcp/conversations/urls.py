"""The state URL (`HIVE_MCP_STATE_URL`): which schemes name a Redis/Valkey server, and where its password goes.

A leaf that imports no Redis client, so the settings can check a URL at start-up cheaply.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["STATE_SCHEMES", "check_state_url", "required_state_url", "with_password"]

STATE_SCHEMES = ("redis", "rediss", "unix")


def check_state_url(url: str | None) -> str | None:
    """`url` (stripped; None when empty) if its scheme is one of `STATE_SCHEMES`, else a ValueError naming them."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    scheme = urlsplit(url).scheme
    if scheme not in STATE_SCHEMES:
        raise ValueError(f"{scheme or 'no'} scheme; expected redis://, rediss:// or unix://")
    return url


def required_state_url(url: str) -> str:
    """`url`, checked (`check_state_url`), for a store that needs one: a ValueError naming `state_url` otherwise."""
    try:
        checked = check_state_url(url)
    except ValueError as exc:
        raise ValueError(f"state_url: {exc}") from None
    if checked is None:
        raise ValueError("state_url: no URL")
    return checked


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` in it (userinfo; a query parameter for unix://), unless the URL carries one already."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None or "password=" in parts.query:
        return url
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}password={quote(password, safe='')}"
    user = quote(parts.username, safe="") if parts.username else ""
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
