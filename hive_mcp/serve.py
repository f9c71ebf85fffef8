"""Serving MCP: build the provider, the dump store and the server, then run one transport until stopped.

`serve(settings)` is the whole of it: logging to stderr, signal handling (SIGTERM
ends the server like Ctrl-C, with exit code 0), then stdio (`hive_mcp.stdio`) or HTTP
(`hive_mcp.http`). The command line (`hive_mcp.cli`) only parses and calls it.

litellm (seconds to import) and mcp are imported inside the functions that
need them, so importing this module stays cheap.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import __version__
from .net import is_loopback, is_wildcard
from .settings import Settings

if TYPE_CHECKING:
    from .models.config import ModelsConfig
    from .provider.base import LLMProvider
    from .provider.deferred import DeferredProvider
    from .spend import Budgets

__all__ = [
    "allowed_models", "configure_logging", "exposed", "exposure_problem", "load_models", "redact_logs",
    "route_litellm_logs", "serve", "server_secrets",
]

EXIT_OK = 0
EXIT_USAGE = 2
# litellm_settings that are module-wide switches in litellm (the config loader's allow-list names them).
_MODULE_SETTINGS = ("modify_params", "force_ipv4", "ssl_verify")

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


# ---------------------------------------------------------------------------
# The models config
# ---------------------------------------------------------------------------


def load_models(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[Settings, ModelsConfig | None]:
    """The config `settings.config` names, and the settings with its `hive_mcp:` section as defaults.

    `os.environ/` references resolve from the environment over the `.env` file.
    The section's values apply where no flag, variable or `.env` entry set the
    setting. With a config, the default model, unless set, is its first group that is not a wildcard
    and has a deployment with its credentials (`ModelsConfig.default_group`).
    Raises ConfigError (one line) for a bad file or a bad value in it.
    """
    if settings.config is None:
        return settings, None
    from pydantic import ValidationError

    from .models.catalogue import is_pattern, pattern_matches, some_names
    from .models.config import ConfigError, load_config
    from .settings.load import read_env_file

    if environ is None:
        path = settings.env_file
        environ = {**(read_env_file(path) if path is not None and path.is_file() else {}), **os.environ}
    config = load_config(settings.config, environ)
    defaults: dict[str, Any] = {}
    for key, value in config.hive_mcp.items():
        name = key.removeprefix("hive_mcp_")
        if name not in Settings.model_fields or name in ("env_file", "config"):
            raise ConfigError(f"{config.path}: hive_mcp.{key}: not a hive-mcp setting")
        if name not in settings.model_fields_set:
            defaults[name] = value
    if "model" not in settings.model_fields_set and "model" not in defaults:
        default = config.default_group()
        if default is None:
            raise ConfigError(
                f"{config.path}: every model_name is a wildcard route ({', '.join(config.patterns())}), which names "
                "no model: set the default model, hive_mcp.model (HIVE_MCP_MODEL or --model), to one it matches"
            )
        defaults["model"] = default
    if defaults:
        kept = {name: getattr(settings, name) for name in settings.model_fields_set}
        try:
            settings = Settings(**kept, **defaults)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = str(err["loc"][0]) if err["loc"] else "?"
            raise ConfigError(f"{config.path}: hive_mcp.{where}: {err['msg']}") from None
    names = config.callable_names()
    plain = settings.model in names and not is_pattern(settings.model)
    if not plain and not any(pattern_matches(p, settings.model) for p in config.patterns()):
        raise ConfigError(
            f"{config.path}: the default model {settings.model!r} (HIVE_MCP_MODEL, --model or hive_mcp.model) is not a "
            f"model_name or alias of the config; callable: {some_names(names)}"
        )
    return settings, config


def _apply_litellm_settings(config: ModelsConfig) -> dict[str, Any]:
    """Set the allow-listed module-wide litellm switches; return the per-call ones (drop_params)."""
    from .provider.offline import litellm

    for name in _MODULE_SETTINGS:
        if name in config.litellm_settings:
            setattr(litellm, name, config.litellm_settings[name])
    return {k: v for k, v in config.litellm_settings.items() if k == "drop_params"}


# ---------------------------------------------------------------------------
# Signals and the entry point
# ---------------------------------------------------------------------------


def unsafe_state_dir(settings: Settings) -> str | None:
    """Why the dump directory or the hive home (where the stores keep their files) must not be used, in one
    line; None when both are absent or private to us (`home.unsafe_dir`). Nothing is changed."""
    from .home import hive_home, unsafe_dir

    places = (("the dump directory (--dump-dir, HIVE_MCP_DUMP_DIR)", settings.dump_dir),
              ("the hive home (HIVE_HOME)", hive_home()))  # fmt: skip
    for what, directory in places:
        if (why := unsafe_dir(directory)) is not None:
            return f"{what} {directory} {why}"
    return None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the server like Ctrl-C: a clean shutdown and exit code 0.

    While serving, stdio's event loop watches SIGTERM and SIGINT itself (`hive_mcp.stdio`) and
    uvicorn, for http/sse, catches them; this handler covers start-up and the way out. A SIGINT
    handler other than Python's default shuts down gracefully: hand SIGTERM to it. Otherwise
    raise KeyboardInterrupt, which serve() turns into a quiet exit.
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
    SIGTERM ignored while the process exits. A bad models config (or a setting
    its `hive_mcp:` section makes unsafe) is one line on stderr and exit code 2.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)  # before anything slow: a SIGTERM at start-up exits quietly
    try:
        return _start(settings, tokens)
    except KeyboardInterrupt:
        return EXIT_OK


def _start(settings: Settings, tokens: tuple[str, ...]) -> int:
    configure_logging(settings.log_level)
    from .models.config import ConfigError
    from .settings import SettingsError
    from .spend import BudgetError
    from .spend.setup import configured_budgets

    try:
        configured, config = load_models(settings)
        if config is not None and configured != settings:
            tokens = configured.auth_tokens() if configured.transport != "stdio" else ()
            problem = exposure_problem(configured, tokens)
            if problem:
                raise ConfigError(f"{config.path}: {problem}")
        budgets = configured_budgets(configured, config, tokens)  # a bad budget refuses to start
        if (unsafe := unsafe_state_dir(configured)) is not None:
            raise SettingsError(unsafe)
    except (ConfigError, SettingsError, BudgetError) as exc:
        print(f"hive-mcp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = configured
    if config is not None:
        configure_logging(settings.log_level)
        for warning in config.warnings:
            logger.warning("%s", warning)
    from .http.listen import PortError

    try:
        return _serve(settings, tokens, config, budgets)
    except PortError as exc:
        print(f"hive-mcp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logger.info("hive-mcp stopped")
        return EXIT_OK
    finally:
        # On the way out (litellm's exit hooks take a moment): a repeated SIGTERM
        # or Ctrl-C would only turn a clean exit into a traceback or a kill.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def build(
    settings: Settings, config: ModelsConfig | None = None, tokens: tuple[str, ...] = (), budgets: Budgets | None = None
) -> tuple[Any, DeferredProvider, Any, Callable[[str | None], Any]]:
    """The MCP server for these settings (and models config), its provider (which loads litellm once
    started), its dump store, and the dashboard's `Sources` of one caller (its Models section reads the
    server's catalogue).
    `budgets` are the ones `serve` checked; without them they are built here (a worker, a test).

    Importing litellm takes seconds: it happens in a background thread after
    `start()`, so the server answers `initialize` and `tools/list` without waiting.
    Every key and password in the config is a secret of the dumps and the provider.
    """
    from .limits import Limits
    from .mcp import build_server
    from .dashboard import Sources
    from .dashboard.models import models_source
    from .mcp.catalogue import ModelsView
    from .provider.catalogue import ConfigCatalogue, DefaultCatalogue
    from .provider.deferred import DeferredProvider
    from .provider.retry import RetryPolicy
    from .scaling import change_sharing, dump_store

    key = settings.api_key_value
    secrets = server_secrets(settings, config, tokens)
    redact_logs(secrets)
    store = dump_store(settings, secrets)
    catalogue = ConfigCatalogue(config) if config is not None else DefaultCatalogue(settings.model, key)

    def load_provider() -> LLMProvider:
        from .provider.litellm import LiteLLMProvider  # imports litellm: seconds

        route_litellm_logs(settings.log_level)
        extra: dict[str, Any] = {}
        router = retry = None
        if config is not None:
            from .provider.routing import ModelRouter

            extra = _apply_litellm_settings(config)
            router = ModelRouter(config)
            if isinstance(catalogue, ConfigCatalogue):
                catalogue.attach(router)
            if config.num_retries is not None:
                retry = RetryPolicy(max_retries=config.num_retries)
        provider = LiteLLMProvider(
            model=settings.model,
            api_key=key,
            api_base=settings.api_base,
            retry=retry,
            dump_store=store,
            deadline_s=settings.deadline_s,
            router=router,
            secrets=secrets,
            **extra,
        )
        provider.warm_up()
        gc.collect()
        # litellm's import leaves some 400,000 objects that live as long as the process; frozen,
        # the collector stops walking them on every full collection (a stall under streaming load).
        gc.freeze()
        return provider

    provider = DeferredProvider(load_provider, model=settings.model)
    from .spend.setup import configured_budgets, open_spend

    if budgets is None:
        budgets = configured_budgets(settings, config, tokens)
    spend = open_spend(settings, provider, budgets)
    bus, dump_watch = change_sharing(settings, store)
    limits = Limits.from_settings(settings.model_copy(update={"allowed_models": allowed_models(settings, config)}))
    server = build_server(
        provider,
        store,
        default_model=settings.model,
        heartbeat_s=settings.heartbeat_s,
        default_max_tokens=settings.default_max_tokens,
        limits=limits,
        catalogue=catalogue,
        conversations=conversation_store(settings, secrets),
        spend=spend,
        bus=bus,
        dump_watch=dump_watch,
        admins=settings.admins,
    )
    models = ModelsView(catalogue, settings.model, limits)
    from .dumps import CallerDumps
    from .mcp.usage_view import usage_source

    def sources(who: str | None) -> Sources:
        """The dashboard's sections as `who` may see them (None: everyone's)."""
        return Sources(models=models_source(CallerDumps(store, who), models.listing), spend=usage_source(spend, who))

    return server, provider, store, sources


def server_secrets(
    settings: Settings, config: ModelsConfig | None = None, tokens: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Every secret the server was given, in every form it was given, longest first: the credentials in
    the environment (each item of a list), the API key, the state password, the config's keys, the bearer
    tokens (the token part of each `name:token` entry, from the variable and the file), and what the
    configured URLs carry (`redact.url_secrets`). Kept out of logs, dumps, conversations and errors."""
    from .redact import credential_values, normalize_secrets, url_secrets

    return normalize_secrets((
        *credential_values(os.environ), settings.api_key_value, settings.state_password_value,
        *url_secrets(settings.api_base), *url_secrets(settings.state_url),
        *(config.secrets if config is not None else ()), *tokens,
    ))  # fmt: skip


def redact_logs(secrets: tuple[str, ...]) -> None:
    """Every handler of the root logger (stderr, see `configure_logging`) redacts `secrets` and key shapes,
    from whichever logger a line comes. Called again, it replaces its filter rather than adding one."""
    from .redact import RedactingFilter

    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(secrets))


def conversation_store(settings: Settings, secrets: tuple[str, ...] = ()) -> Any:
    """The conversation store the settings ask for (None when HIVE_MCP_CONVERSATIONS=off).

    SQLite in the hive home unless HIVE_MCP_STATE_URL names a Redis/Valkey server.
    Nothing is opened yet: a store that cannot be reached fails the calls that
    continue a conversation, and new calls go ahead without an id. `secrets` are
    redacted with the settings' own (`server_secrets`).
    """
    if settings.conversations == "off":
        return None
    from .conversations import ConversationLimits, open_store
    from .redact import normalize_secrets, redact_text

    found = normalize_secrets((*server_secrets(settings), *secrets))
    limits = ConversationLimits(
        ttl_s=settings.conversation_ttl_s, max_conversations=settings.conversation_max,
        max_turns=settings.conversation_max_turns, max_bytes=settings.conversation_max_bytes,
    )  # fmt: skip
    return open_store(settings.state_url_with_password, limits=limits, redact=lambda text: redact_text(text, found))


def _serve(
    settings: Settings, tokens: tuple[str, ...], config: ModelsConfig | None = None, budgets: Budgets | None = None
) -> int:
    if settings.workers > 1:  # each worker process builds its own server (hive_mcp.http.workers)
        from .http.workers import run_workers

        run_workers(settings, tokens, config)
        logger.info("hive-mcp stopped")
        return EXIT_OK
    listener = None
    if settings.transport != "stdio":
        from .http.listen import bind

        listener = bind(settings.host, settings.port)  # before anything is built or says it serves
    server, provider, store, sources = build(settings, config, tokens, budgets)
    from .redact import strip_credentials

    logger.info(
        "hive-mcp %s: model %s%s%s, dumps in %s%s",
        __version__,
        settings.model,
        f" (groups from {config.path})" if config is not None else "",
        f" at {strip_credentials(settings.api_base)}" if settings.api_base else "",
        store.location() if hasattr(store, "location") else settings.dump_dir,
        f", settings from {settings.env_file}" if settings.env_file else "",
    )
    if not settings.api_key_value and config is None:
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

        run_http(server, settings, tokens, store, sources, listener)
    logger.info("hive-mcp stopped")
    return EXIT_OK
