"""Serving MCP: read the models config, build the server (`hive_mcp.build`), then run one transport until stopped.

`serve(settings)` is the whole of it: logging to stderr, signal handling (SIGTERM
ends the server like Ctrl-C, with exit code 0, from start-up on: `hive_mcp.stopping`), then stdio
(`hive_mcp.stdio`) or HTTP (`hive_mcp.http`). The command line (`hive_mcp.cli`) only parses and calls it.

litellm (seconds to import) and mcp are imported inside the functions that
need them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import __version__
from .build import build
from .exposure import exposed, exposure_problem
from .logs import configure_logging
from .settings import Settings
from . import stopping
from .stopping import EXIT_OK, install

if TYPE_CHECKING:
    import socket

    from .llms.config import ModelsConfig
    from .spend import Budgets

__all__ = ["load_models", "serve", "unsafe_state_dir"]

EXIT_USAGE = 2
"""Bad input (a setting, a flag, the models config): one line, this exit code; the commands of `cli` too."""

logger = logging.getLogger("hive_mcp")


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

    from .llms.catalogue import is_pattern, pattern_matches, some_names
    from .llms.config import ConfigError, load_config
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



# ---------------------------------------------------------------------------
# Signals and the entry point
# ---------------------------------------------------------------------------


DUMP_DIR_NAMED = "the dump directory (--dump-dir, HIVE_MCP_DUMP_DIR)"


def unsafe_state_dir(settings: Settings) -> str | None:
    """Why the dump directory or the hive home (where the stores keep their files) must not be used, in one
    line; None when both are absent or private to us (`home.unsafe_dir`). Nothing is changed."""
    from .home import hive_home, unsafe_dir

    places = ((DUMP_DIR_NAMED, settings.dump_dir),
              ("the hive home (HIVE_HOME)", hive_home()))  # fmt: skip
    for what, directory in places:
        if (why := unsafe_dir(directory)) is not None:
            return f"{what} {directory} {why}"
    return None


def serve(settings: Settings, tokens: tuple[str, ...] = ()) -> int:
    """Build the provider, the store and the server, then serve until stopped. Returns the exit code.

    `tokens` are the bearer tokens HTTP clients must present (none: no
    authentication); see `hive_mcp.http`. For the process's main thread only:
    it installs signal handlers and, once serving is over, leaves SIGINT and
    SIGTERM ignored while the process exits. A bad models config (or a setting
    its `hive_mcp:` section makes unsafe) is one line on stderr and exit code 2.
    """
    install()  # before anything slow (where `python -m hive_mcp` or `hive-mcp` did not already)
    try:
        return _start(settings, tokens)
    except KeyboardInterrupt:
        return EXIT_OK


def _start(settings: Settings, tokens: tuple[str, ...]) -> int:
    configure_logging(settings.log_level)
    from .llms.config import ConfigError
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
        stopping.ignore()


def _serve(
    settings: Settings, tokens: tuple[str, ...], config: ModelsConfig | None = None, budgets: Budgets | None = None
) -> int:
    if settings.workers > 1:  # each worker process builds its own server (hive_mcp.http.workers)
        from .home import hive_home
        from .observe.multiproc import share_between_workers

        share_between_workers(hive_home())  # before anything imports prometheus-client: the workers inherit it
        from .http.workers import run_workers

        serve_metrics_port(bind_metrics_port(settings), settings)
        run_workers(settings, tokens, config)
        logger.info("hive-mcp stopped")
        return EXIT_OK
    listener = None
    if settings.transport != "stdio":
        from .http.listen import bind

        listener = bind(settings.host, settings.port)  # before anything is built or says it serves
    metrics_listener = bind_metrics_port(settings)  # likewise
    app = build(settings, config, tokens, budgets)
    from .redact import strip_credentials

    logger.info(
        "hive-mcp %s: model %s%s%s, dumps in %s%s",
        __version__,
        settings.model,
        f" (groups from {config.path})" if config is not None else "",
        f" at {strip_credentials(settings.api_base)}" if settings.api_base else "",
        app.store.location() if hasattr(app.store, "location") else settings.dump_dir,
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
    app.provider.start(announce="provider loaded")  # until then a call waits for litellm's import
    try:
        serve_metrics_port(metrics_listener, settings)
        if settings.transport == "stdio":
            from .stdio import run_stdio

            logger.info("serving MCP over stdio")
            run_stdio(app.server, app.aclose)
            app.spend.release_all()  # the calls settled while stopping into the ledger, before the exit
        else:
            from .http.app import run_http

            run_http(
                app.server, settings, tokens, app.store, app.sources, listener, app.tasks, app.spend,
                app.conversations,
            )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM, which uvicorn raises again once it has stopped
        pass
    logger.info("hive-mcp stopped")
    if not app.provider.loaded:
        stopping.leave()
    return EXIT_OK


def bind_metrics_port(settings: Settings) -> socket.socket | None:
    """`--metrics-port`, on the serving host (stdio: loopback), bound at start-up as the main port is: a port
    that cannot be had is one line naming `--metrics-port` and exit code 2 (PortError), before anything is built
    or says it serves. Over http/sse it must differ from `--port`: on one host both binds would succeed (each
    socket has SO_REUSEADDR and neither listens yet) and the server would die once it listened. None without
    the setting."""
    if settings.metrics_port is None:
        return None
    from .http.listen import MAIN_PORT, METRICS_PORT, PortError, bind

    if settings.transport != "stdio" and settings.metrics_port == settings.port:
        raise PortError(f"{METRICS_PORT} and {MAIN_PORT} are both {settings.port}: /metrics needs a port of its own; "
                        "choose another or leave the metrics port unset (/metrics is also served on the main port)")
    host = "127.0.0.1" if settings.transport == "stdio" else settings.host
    return bind(host, settings.metrics_port, setting=METRICS_PORT)


def serve_metrics_port(listener: socket.socket | None, settings: Settings) -> None:
    """`/metrics` on the port `bind_metrics_port` bound, if any."""
    if listener is None:
        return
    from .observe.endpoint import serve_metrics

    serve_metrics(listener, settings.metrics_token_value)
