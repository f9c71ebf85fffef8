"""The state URL (`HIVE_MCP_STATE_URL`): which kind of state backend each scheme names (`SCHEMES`, `state_kind`;
`backends.KINDS` opens each kind's stores), whether a URL is one its kind can connect with, and where its
password goes.

A leaf that imports no client, so the settings can check a URL at start-up cheaply.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

__all__ = ["NO_URL_KIND", "SCHEMES", "SCHEMES_TEXT", "check_state_url", "required_state_url", "state_kind",
           "with_password"]  # fmt: skip


class Scheme(NamedTuple):
    kind: str
    """The kind of state backend a URL of the scheme names (a key of `backends.KINDS`)."""
    form: str
    """How a URL of the scheme is written, as an error shows it."""


SCHEMES = {
    "redis": Scheme("redis", "redis://HOST:PORT/DB"),
    "rediss": Scheme("redis", "rediss://HOST:PORT/DB"),
    "unix": Scheme("redis", "unix:///PATH"),
}
"""Every scheme a state URL may have, and the kind it names."""
NO_URL_KIND = "sqlite"
"""The kind without a state URL: SQLite files and the dump directory in the hive home."""


def _either(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


SCHEMES_TEXT = _either([f"{name}://" for name in SCHEMES])
"""The schemes, as the settings' help and the errors name them."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_NAME = re.compile(r"[a-z_]{1,40}")

# The query parameters redis-py turns into connection options, by the schemes whose connection takes them, and
# how each is read: "int", "float", "flag" (any value) or "text". Any other would reach the connection as an
# unknown keyword (a TypeError on the first command) or override what the stores rely on (decode_responses).
_COMMON_QUERY = {
    "db": "int", "protocol": "int", "socket_read_size": "int", "max_connections": "int", "health_check_interval": "int",
    "socket_timeout": "float", "socket_connect_timeout": "float", "retry_on_timeout": "flag", "password": "text",
    "username": "text", "client_name": "text", "lib_name": "text", "lib_version": "text",
}  # fmt: skip
_TCP_QUERY = {**_COMMON_QUERY, "socket_keepalive": "flag"}
_QUERY = {
    "unix": _COMMON_QUERY,
    "redis": _TCP_QUERY,
    "rediss": {**_TCP_QUERY, **dict.fromkeys(("ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data", "ssl_ca_path",
                                              "ssl_certfile", "ssl_keyfile", "ssl_ciphers", "ssl_password"), "text"),
               "ssl_check_hostname": "flag"},
}  # fmt: skip
_CERT_REQS = ("none", "optional", "required")


def state_kind(url: str | None) -> str:
    """The kind of state backend `url` (checked: `check_state_url`) names; `NO_URL_KIND` without one."""
    return SCHEMES[url.split(":", 1)[0].lower()].kind if url else NO_URL_KIND


def check_state_url(url: str | None) -> str | None:
    """`url` (stripped; None when empty) if its kind can connect with it: a scheme of `SCHEMES`, and what that
    kind's check asks (`_CHECKS`). Else a ValueError, one line naming the part that is wrong and never the URL
    itself (its userinfo or query may hold a password)."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    found = _SCHEME.match(url)
    if found is None:
        raise ValueError(f"not a URL; expected {_either([s.form for s in SCHEMES.values()])}")
    scheme = found.group(1).lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{found.group(1)}:// is not a state store scheme; expected {SCHEMES_TEXT}")
    check = _CHECKS.get(SCHEMES[scheme].kind)
    if check is not None:
        check(scheme, url)
    return url


def _check_redis(scheme: str, url: str) -> None:
    """A URL redis-py can connect with: a valid host and port, a database number, query parameters a
    connection takes."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("the host is not valid (an IPv6 address goes in brackets: redis://[::1]:6379/0)") from None
    if scheme == "unix":
        if parts.hostname or not parts.path.startswith("/"):
            raise ValueError("unix:// takes the socket's absolute path: unix:///run/valkey.sock")
    else:
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("the port is not a number from 1 to 65535")
        db = unquote(parts.path).replace("/", "")
        if db and not db.isdecimal():
            raise ValueError("the database (the URL's path) is not a number; e.g. redis://HOST:6379/0")
    for name, values in parse_qs(parts.query).items():  # as redis-py reads it: blank values left out, first wins
        _check_query(scheme, name, values[0])


def _check_query(scheme: str, name: str, value: str) -> None:
    """One query parameter, as `_QUERY` says the scheme's connection takes it; the value is never shown."""
    shown = name if _NAME.fullmatch(name) else "(a name that is not a word)"
    kind = _QUERY[scheme].get(name)
    if kind is None:
        raise ValueError(f"the query parameter {shown} is not one a {scheme}:// connection takes")
    try:
        number = int(value) if kind == "int" else float(value) if kind == "float" else None
    except ValueError:
        raise ValueError(f"the query parameter {name} is not {'a whole' if kind == 'int' else 'a'} number") from None
    if name == "db" and number is not None and number < 0:
        raise ValueError("the query parameter db is not a whole number from 0")
    if name == "protocol" and number not in (2, 3):
        raise ValueError("the query parameter protocol must be 2 or 3")
    if name == "ssl_cert_reqs" and value not in _CERT_REQS:
        raise ValueError("the query parameter ssl_cert_reqs must be none, optional or required")


_CHECKS = {"redis": _check_redis}
"""What a URL of each kind must be beyond its scheme (a kind without an entry: the scheme alone)."""


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
