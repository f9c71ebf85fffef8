"""Serving MCP: build the provider, the dump store and the server, then run one transport until stopped.

`serve(settings)` is the whole of it: logging to stderr, signal handling (SIGTERM
ends the server like Ctrl-C, with exit code 0), then stdio (`hive_mcp.stdio`) or HTTP
(`hive_mcp.http`). The command line (`hive_mcp.cli`) only parses and calls it.

litellm (seconds to import) and mcp are imported inside the functions that
need them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__
from .net import is_loopback, is_wildcard
from .settings import Settings

if TYPE_CHECKING:
    from .provider.base import LLMProvider
    from .provider.deferred import DeferredProvider

__all__ = ["allowed_models", "configure_logging", "exposed", "exposure_problem", "route_litellm_logs", "serve"]

EXIT_OK = 0

logger = logging.getLogger("hive_mcp")


# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------


def configure_logging(level: str) -> None:
    """Root logger to stderr only, replacing any handler: stdout belongs to the protocol under stdio."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def route_litellm_logs(level: str) -> None:
    """Send litellm's logs through our stderr handler (call after importing litellm).

    litellm gives its loggers a handler of its own that writes records below
    WARNING to stdout, which under stdio is the protocol stream, and the records
    also propagate to the root handler, so each line showed twice. The handler
    goes; its filters (litellm's secret redaction among them) move onto the
    loggers. litellm's INFO lines (one per call) show only at --log-level DEBUG,
    or at the level LITELLM_LOG names.
    """
    wanted = os.environ.get("LITELLM_LOG", "").strip().upper()
    if wanted not in _LEVELS:
        wanted = "DEBUG" if level == "DEBUG" else "WARNING"
    for name in _LITELLM_LOGGERS:
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            for f in handler.filters:
                if f not in lg.filters:
                    lg.addFilter(f)
            lg.removeHandler(handler)
        lg.propagate = True
        lg.setLevel(wanted)


# ---------------------------------------------------------------------------
# Exposure: what a bind beyond loopback requires, and what it may spend
# ---------------------------------------------------------------------------


def exposure_problem(settings: Settings, tokens: tuple[str, ...]) -> str | None:
    """Why the server must not start as configured, or None.

    HTTP on a non-loopback address needs a token (or --allow-unauthenticated):
    otherwise anyone who can reach the port spends the server's keys. A
    wildcard bind (0.0.0.0, ::) needs --allowed-host: the SDK's DNS-rebinding
    protection accepts only Host headers it was told, and from a wildcard bind
    no name can be derived.
    """
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


def allowed_models(settings: Settings) -> tuple[str, ...]:
    """The model patterns calls may name: HIVE_MCP_ALLOWED_MODELS, else any on loopback, else the default only.

    A server reachable from the network and told nothing would let any client
    name any litellm model and spend every credential in the environment; the
    operator chose one model, so that one is what such a server serves. The
    pattern escapes fnmatch's special characters, so it matches that name only.
    """
    if settings.allowed_models or not exposed(settings):
        return settings.allowed_models
    return ("".join(f"[{c}]" if c in "*?[" else c for c in settings.model),)


# ---------------------------------------------------------------------------
# Signals and the entry point
# ---------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the server like Ctrl-C: a clean shutdown and exit code 0.

    The asyncio runner (stdio) installs a SIGINT handler that shuts down
    gracefully; hand SIGTERM to it. (uvicorn, for http/sse, catches SIGTERM
    itself while serving.) With none in place (start-up, or SIGINT ignored by
    the parent), raise KeyboardInterrupt, which serve() turns into a quiet exit.
    """
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def serve(settings: Settings, tokens: tuple[str, ...] = ()) -> int:
    """Build the provider, the store and the server, then serve until stopped. Returns the exit code.

    `tokens` are the bearer tokens HTTP clients must present (none: no
    authentication); see `hive_mcp.http`. For the process's main thread only:
    it installs signal handlers and, once serving is over, leaves SIGINT and
    SIGTERM ignored while the process exits.
    """
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _serve(settings, tokens)
    except KeyboardInterrupt:
        logger.info("hive-mcp stopped")
        return EXIT_OK
    finally:
        # On the way out (litellm's exit hooks take a moment): a repeated SIGTERM
        # or Ctrl-C would only turn a clean exit into a traceback or a kill.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def build(settings: Settings) -> tuple[Any, DeferredProvider, Any, Any]:
    """The MCP server for these settings, its provider (which loads litellm once started), its dump store,
    and the dashboard's `Sources` (its Models section reads the catalogue the server was given).

    Importing litellm takes seconds: it happens in a background thread after
    `start()`, so the server answers `initialize` and `tools/list` without waiting.
    """
    from .dumps import DumpStore
    from .limits import Limits
    from .provider.deferred import DeferredProvider
    from .mcp import build_server
    from .mcp.catalogue import ModelsView
    from .dashboard import Sources
    from .dashboard.models import models_source
    from .models.static import StaticCatalogue

    key = settings.api_key_value
    store = DumpStore(
        settings.dump_dir,
        max_count=settings.dump_max_count,
        max_bytes=settings.dump_max_bytes,
        max_age=settings.dump_max_age,
        secrets=(key,) if key else (),
    )

    def load_provider() -> LLMProvider:
        from .provider.litellm import LiteLLMProvider  # imports litellm: seconds

        route_litellm_logs(settings.log_level)
        provider = LiteLLMProvider(
            model=settings.model,
            api_key=key,
            api_base=settings.api_base,
            dump_store=store,
            deadline_s=settings.deadline_s,
        )
        provider.warm_up()
        return provider

    provider = DeferredProvider(load_provider, model=settings.model)
    catalogue = StaticCatalogue(settings.model)  # build_server's own default, made here for the dashboard too
    limits = Limits.from_settings(settings.model_copy(update={"allowed_models": allowed_models(settings)}))
    server = build_server(
        provider,
        store,
        default_model=settings.model,
        heartbeat_s=settings.heartbeat_s,
        default_max_tokens=settings.default_max_tokens,
        limits=limits,
        catalogue=catalogue,
        conversations=conversation_store(settings),
    )
    models = ModelsView(catalogue, settings.model, limits)
    return server, provider, store, Sources(models=models_source(store, models.listing))


def conversation_store(settings: Settings) -> Any:
    """The conversation store the settings ask for (None when HIVE_MCP_CONVERSATIONS=off).

    SQLite in the hive home unless HIVE_MCP_STATE_URL names a Redis/Valkey server.
    Nothing is opened yet: a store that cannot be reached fails the calls that
    continue a conversation, and new calls go ahead without an id.
    """
    if settings.conversations == "off":
        return None
    from .conversations import ConversationLimits, open_store
    from .conversations.urls import with_password
    from .redact import credential_values, normalize_secrets, redact_text

    password = settings.state_password.get_secret_value() if settings.state_password is not None else None
    found = normalize_secrets((*credential_values(os.environ), settings.api_key_value, password))
    limits = ConversationLimits(
        ttl_s=settings.conversation_ttl_s, max_conversations=settings.conversation_max,
        max_turns=settings.conversation_max_turns, max_bytes=settings.conversation_max_bytes,
    )  # fmt: skip
    url = with_password(settings.state_url, password) if settings.state_url else None
    return open_store(url, limits=limits, redact=lambda text: redact_text(text, found))


def _serve(settings: Settings, tokens: tuple[str, ...]) -> int:
    server, provider, store, sources = build(settings)
    logger.info(
        "hive-mcp %s: model %s%s, dumps in %s%s",
        __version__,
        settings.model,
        f" at {settings.api_base}" if settings.api_base else "",
        settings.dump_dir,
        f", settings from {settings.env_file}" if settings.env_file else "",
    )
    if not settings.api_key_value:
        logger.info(
            "HIVE_MCP_API_KEY is not set: using the provider's own variable (e.g. OPENAI_API_KEY) if present; "
            "calls fail with a message naming the variable when none is"
        )

    if exposed(settings) and not settings.allowed_models:
        logger.info(
            "%s on %s is reachable beyond loopback and HIVE_MCP_ALLOWED_MODELS is not set: calls may use only "
            "the default model, %s",
            settings.transport,
            settings.host,
            settings.model,
        )
    provider.start()
    if settings.transport == "stdio":
        from .stdio import run_stdio

        logger.info("serving MCP over stdio")
        run_stdio(server)
    else:
        from .http import run_http

        run_http(server, settings, tokens, store, sources)
    logger.info("hive-mcp stopped")
    return EXIT_OK
