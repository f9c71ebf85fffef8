"""Addresses, as both the HTTP surface and the start-up checks see them. A leaf: imports nothing of ours.

`is_loopback` decides whether a bind is exposed to the network; `is_wildcard`
whether it listens on every address, where no Host header can be derived from
the bind and the operator must name the accepted ones (`--allowed-host`).
"""

from __future__ import annotations

import ipaddress

__all__ = ["WILDCARD_HOSTS", "host_for_url", "host_name", "is_loopback", "is_wildcard"]

WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")
"""Binds that listen on every interface."""


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1), bracketed or not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in WILDCARD_HOSTS


def host_name(host_header: str) -> str:
    """A Host header's name, without its port: `[::1]:9464` is `[::1]`, `localhost:9464` `localhost`."""
    if host_header.startswith("["):
        return host_header.partition("]")[0] + "]"
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def host_for_url(host: str) -> str:
    """An IPv6 address in brackets, as URLs and Host headers write it; anything else as it is."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
