"""Exposure: what a bind beyond loopback requires (a token, named hosts), and which models a server
may spend on when nobody said."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .net import is_loopback, is_wildcard
from .settings import Settings

if TYPE_CHECKING:
    from .llms.config import ModelsConfig

__all__ = ["allowed_models", "exposed", "exposure_problem"]


def exposure_problem(settings: Settings, tokens: tuple[str, ...]) -> str | None:
    """Why the server must not start as configured, or None.

    HTTP on a non-loopback address needs a token (or --allow-unauthenticated):
    otherwise anyone who can reach the port spends the server's keys. A
    wildcard bind (0.0.0.0, ::) needs --allowed-host: the SDK's DNS-rebinding
    protection accepts only Host headers it was told, and from a wildcard bind
    no name can be derived.
    """
    from .scaling import scaling_problem

    if (scaling := scaling_problem(settings)) is not None:
        return scaling
    if settings.transport == "stdio" or is_loopback(settings.host):
        return None
    if not tokens and not settings.allow_unauthenticated:
        return (
            f"refusing to serve {settings.transport} on {settings.host} without authentication (anyone who can "
            "reach the port could spend your API key): set HIVE_MCP_AUTH_TOKEN (or HIVE_MCP_AUTH_TOKEN_FILE), "
            "or pass --allow-unauthenticated"
        )
    if is_wildcard(settings.host) and not settings.allowed_hosts:
        return (
            f"--host {settings.host or repr(settings.host)} listens on every address, so the Host headers to accept "
            "cannot be derived from it: name them with --allowed-host (HIVE_MCP_ALLOWED_HOSTS), e.g. "
            "--allowed-host mcp.example.com"
        )
    return None


def exposed(settings: Settings) -> bool:
    """Whether this server listens beyond loopback."""
    return settings.transport != "stdio" and not is_loopback(settings.host)


def allowed_models(settings: Settings, config: ModelsConfig | None = None) -> tuple[str, ...]:
    """The model patterns calls may name: HIVE_MCP_ALLOWED_MODELS, else any on loopback, else the default only.

    A server reachable from the network and told nothing would let any client
    name any litellm model and spend every credential in the environment; the
    operator chose one model, so that one is what such a server serves. With a
    models config, its groups and aliases are what it serves. Each pattern
    escapes fnmatch's special characters, so it matches that name only.
    """
    if settings.allowed_models:
        return settings.allowed_models
    if config is not None:
        # A wildcard group's `*` stays fnmatch's (any text, as litellm's pattern router reads it).
        patterns = set(config.patterns())
        return tuple(_exact(name, keep="*" if name in patterns else "") for name in config.callable_names())
    return () if not exposed(settings) else (_exact(settings.model),)


def _exact(name: str, keep: str = "") -> str:
    """`name` as an fnmatch pattern matching itself, but for the special characters in `keep`."""
    return "".join(f"[{c}]" if c in "*?[" and c not in keep else c for c in name)

