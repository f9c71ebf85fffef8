"""DNS-rebinding protection: the Host and Origin headers the SDK's app accepts.

A wildcard bind (0.0.0.0, ::) adds no name of its own: which names and
addresses clients use to reach the machine is the operator's to say, with
`--allowed-host` (the command refuses to start a wildcard bind without one, see
`hive_mcp.exposure.exposure_problem`). Guessing them from the interfaces would
accept names nobody configured and miss the ones a proxy forwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..net import host_for_url, is_loopback, is_wildcard

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["host_patterns", "transport_security_settings"]

LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def transport_security_settings(settings: Settings) -> Any:
    """The SDK's Host/Origin checks, always on.

    Loopback names are always accepted (the SDK's own default for a loopback
    bind); a bind to one non-loopback address adds its own `host:port`;
    `HIVE_MCP_ALLOWED_HOSTS` / `--allowed-host` and `HIVE_MCP_ALLOWED_ORIGINS` /
    `--allowed-origin` add more, in any case (the guard lowers the headers too). A host given without a port
    matches any port; `name:*` does too.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    hosts, origins = list(LOOPBACK_HOSTS), list(LOOPBACK_ORIGINS)
    if not is_loopback(settings.host) and not is_wildcard(settings.host):
        bound = f"{host_for_url(settings.host)}:{settings.port}".lower()
        hosts.append(bound)
        origins += [f"http://{bound}", f"https://{bound}"]
    for entry in settings.allowed_hosts:
        hosts += host_patterns(entry.lower())
    origins += [o.rstrip("/").lower() for o in settings.allowed_origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def host_patterns(entry: str) -> list[str]:
    """`example.com` -> itself and `example.com:*`; `example.com:8443` and `name:*` as they are."""
    has_port = ("]:" in entry) if entry.startswith("[") else entry.count(":") == 1
    if not entry.startswith("[") and entry.count(":") > 1:  # a bare IPv6 address
        entry = f"[{entry}]"
    return [entry] if has_port else [entry, f"{entry}:*"]
