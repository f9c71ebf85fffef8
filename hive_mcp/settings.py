"""Configuration: command-line flags, the environment and a `.env` file, in that order.

Precedence, per setting: a flag given on the command line, else the real
environment (`HIVE_MCP_*`), else the `.env` file (by default `./.env` in the
working directory), else the built-in default. An empty value (`HIVE_MCP_MODEL=`)
counts as unset.

The API key is read from the environment or `.env` only (`HIVE_MCP_API_KEY`),
never from a flag: command lines are visible to every user on the machine (`ps`).
It is kept as a `SecretStr`, so it never shows in a repr, a log line or a traceback.

`.env` also carries the provider's own variables (`OPENAI_API_KEY`,
`ANTHROPIC_API_KEY`, `AZURE_API_BASE`, `LITELLM_*`, ...). litellm reads those from
`os.environ`, not from us, so `load_settings()` exports every `.env` entry that is
not a `HIVE_MCP_*` setting into the environment when that variable is not already
set there (the real environment always wins, as with python-dotenv's
`load_dotenv(override=False)`). It must therefore run before litellm is imported.

This module imports neither litellm nor mcp: `hive-mcp --help` and
`hive-mcp dumps ...` must stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .dumps import default_dump_dir

__all__ = [
    "ENV_PREFIX",
    "PROVIDER_KEY_VARS",
    "SETTINGS_FIELDS",
    "Settings",
    "SettingsError",
    "SettingSpec",
    "load_settings",
]

ENV_PREFIX = "HIVE_MCP_"
DEFAULT_ENV_FILE = ".env"

Transport = Literal["stdio", "http", "sse"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

SDK_TRANSPORTS: dict[str, str] = {"stdio": "stdio", "http": "streamable-http", "sse": "sse"}
"""Our transport names -> the names `MCPServer.run()` takes."""

PROVIDER_KEY_VARS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "OpenAI and openai/ models (read by litellm)"),
    ("ANTHROPIC_API_KEY", "anthropic/ models"),
    ("GEMINI_API_KEY", "gemini/ models"),
    ("OPENROUTER_API_KEY", "openrouter/ models"),
    ("GROQ_API_KEY", "groq/ models"),
    ("MISTRAL_API_KEY", "mistral/ models"),
    ("AZURE_API_KEY", "azure/ models (with AZURE_API_BASE, AZURE_API_VERSION)"),
)
"""litellm's own key variables, documented in `--help`. Any variable litellm reads works."""


class SettingsError(ValueError):
    """A setting has an invalid value. The message is one line naming the flag or variable."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its field, where it can come from, and how `--help` describes it."""

    field: str
    env: str
    flag: str | None
    help: str
    metavar: str = "VALUE"


SETTINGS_FIELDS: tuple[SettingSpec, ...] = (
    SettingSpec("model", "HIVE_MCP_MODEL", "--model", "default litellm model (default: gpt-4o-mini)", "MODEL"),
    SettingSpec(
        "api_base", "HIVE_MCP_API_BASE", "--api-base", "base URL of the provider's API (proxies, local servers)", "URL"
    ),
    SettingSpec(
        "api_key",
        "HIVE_MCP_API_KEY",
        None,
        "API key for the model; environment or .env only, never a flag (flags show in `ps`). "
        "If unset, litellm's own variable for the provider is used (e.g. OPENAI_API_KEY)",
        "KEY",
    ),
    SettingSpec(
        "dump_dir",
        "HIVE_MCP_DUMP_DIR",
        "--dump-dir",
        "directory for failed-request dumps (default: $HIVE_HOME/failed_requests, else ~/.hive/failed_requests)",
        "DIR",
    ),
    SettingSpec("transport", "HIVE_MCP_TRANSPORT", "--transport", "stdio | http | sse (default: stdio)", "NAME"),
    SettingSpec("host", "HIVE_MCP_HOST", "--host", "address to bind for http/sse (default: 127.0.0.1)", "HOST"),
    SettingSpec("port", "HIVE_MCP_PORT", "--port", "port for http/sse (default: 8765)", "PORT"),
    SettingSpec(
        "heartbeat_s",
        "HIVE_MCP_HEARTBEAT_S",
        "--heartbeat",
        "seconds between progress heartbeats while a call waits (default: 10)",
        "SECONDS",
    ),
    SettingSpec("dump_max_count", "HIVE_MCP_DUMP_MAX_COUNT", None, "keep at most this many dumps (default: 500)", "N"),
    SettingSpec("dump_max_mb", "HIVE_MCP_DUMP_MAX_MB", None, "keep at most this many MB of dumps (default: 100)", "MB"),
    SettingSpec(
        "dump_max_age_days", "HIVE_MCP_DUMP_MAX_AGE_DAYS", None, "delete dumps older than this (default: 30)", "DAYS"
    ),
    SettingSpec(
        "log_level",
        "HIVE_MCP_LOG_LEVEL",
        "--log-level",
        "DEBUG | INFO | WARNING | ERROR | CRITICAL, logged to stderr (default: INFO)",
        "LEVEL",
    ),
    # Cost control
    SettingSpec(
        "allowed_models",
        "HIVE_MCP_ALLOWED_MODELS",
        None,
        "comma-separated fnmatch patterns of the models calls may name, e.g. gpt-4o*,anthropic/* "
        "(default: any; the default model is always allowed)",
        "PATTERNS",
    ),
    SettingSpec("max_tokens", "HIVE_MCP_MAX_TOKENS", None, "cap on a call's max_tokens (default: no cap)", "N"),
    SettingSpec(
        "max_in_flight", "HIVE_MCP_MAX_IN_FLIGHT", None, "upstream calls in flight at once; more wait (default: 64)", "N"
    ),
    SettingSpec(
        "queue_timeout_s",
        "HIVE_MCP_QUEUE_TIMEOUT_S",
        None,
        "seconds a call waits for a free slot before it is refused as busy (default: 30)",
        "SECONDS",
    ),
    SettingSpec(
        "deadline_s",
        "HIVE_MCP_DEADLINE_S",
        None,
        "seconds a call may take, retries included; calls may ask for less (default: 600)",
        "SECONDS",
    ),
    SettingSpec(
        "max_input_bytes",
        "HIVE_MCP_MAX_INPUT_BYTES",
        None,
        "largest prompt+messages+system+tools, as UTF-8 JSON (default: 1048576)",
        "BYTES",
    ),
    # end Cost control
    # HTTP surface
    SettingSpec(
        "auth_token",
        "HIVE_MCP_AUTH_TOKEN",
        None,
        "bearer token(s) http/sse clients must send (Authorization: Bearer TOKEN), comma-separated; "
        "environment or .env only, never a flag",
        "TOKEN",
    ),
    SettingSpec(
        "auth_token_file",
        "HIVE_MCP_AUTH_TOKEN_FILE",
        None,
        "a file of bearer tokens, one per line (# comments); environment or .env only",
        "PATH",
    ),
    SettingSpec(
        "allow_unauthenticated",
        "HIVE_MCP_ALLOW_UNAUTHENTICATED",
        "--allow-unauthenticated",
        "serve http/sse on a non-loopback address without a token (default: refuse to start)",
        "BOOL",
    ),
    SettingSpec(
        "allowed_hosts",
        "HIVE_MCP_ALLOWED_HOSTS",
        "--allowed-host",
        "more Host header values to accept, comma-separated (DNS-rebinding protection: others get 421); "
        "loopback names and the bound host:port always are; a name without a port matches any port",
        "HOSTS",
    ),
    SettingSpec(
        "allowed_origins",
        "HIVE_MCP_ALLOWED_ORIGINS",
        "--allowed-origin",
        "more Origin header values to accept, comma-separated, e.g. https://app.example.com (others get 403)",
        "ORIGINS",
    ),
    SettingSpec(
        "max_body_bytes",
        "HIVE_MCP_MAX_BODY_BYTES",
        None,
        "largest HTTP request body; larger gets 413 (default: 4194304, 4 MiB)",
        "BYTES",
    ),
    SettingSpec(
        "shutdown_grace_s",
        "HIVE_MCP_SHUTDOWN_GRACE_S",
        None,
        "seconds calls in flight get to finish after SIGTERM before they are answered with an error (default: 10)",
        "SECONDS",
    ),
    # end HTTP surface
)
_BY_FIELD = {s.field: s for s in SETTINGS_FIELDS}


class Settings(BaseModel):
    """The server's configuration. Build it with `load_settings()`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="gpt-4o-mini", min_length=1)
    api_base: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    dump_dir: Path
    transport: Transport = "stdio"
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8765, ge=1, le=65535)
    heartbeat_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    dump_max_count: int = Field(default=500, ge=0)
    dump_max_mb: float = Field(default=100.0, ge=0, allow_inf_nan=False)
    dump_max_age_days: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    log_level: LogLevel = "INFO"
    # Cost control
    allowed_models: tuple[str, ...] = ()
    """fnmatch patterns; empty means any model."""
    max_tokens: int | None = Field(default=None, ge=1)
    max_in_flight: int = Field(default=64, ge=1)
    queue_timeout_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    deadline_s: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    max_input_bytes: int = Field(default=1024 * 1024, ge=1)

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _split_patterns(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return v

    # end Cost control
    # HTTP surface
    auth_token: SecretStr | None = Field(default=None, repr=False)
    """Comma-separated bearer tokens; read them with `auth_tokens()`."""
    auth_token_file: Path | None = None
    allow_unauthenticated: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    shutdown_grace_s: float = Field(default=10.0, ge=0, allow_inf_nan=False)

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        """`a,b` from the environment, or a list of such from repeated flags."""
        if isinstance(v, str):
            v = [v]
        if isinstance(v, (list, tuple)) and all(isinstance(p, str) for p in v):
            return tuple(x.strip() for p in v for x in p.split(",") if x.strip())
        return v

    @field_validator("auth_token_file", mode="after")
    @classmethod
    def _expand_token_file(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    def auth_tokens(self) -> tuple[str, ...]:
        """The bearer tokens from HIVE_MCP_AUTH_TOKEN and HIVE_MCP_AUTH_TOKEN_FILE; () when neither is set.

        Raises SettingsError, naming the variable and never a token, for an
        unreadable or empty file or a token that cannot travel in an HTTP header.
        """
        found: list[tuple[str, str]] = []
        if self.auth_token is not None:
            text = self.auth_token.get_secret_value()
            found += [("HIVE_MCP_AUTH_TOKEN", t.strip()) for t in text.split(",") if t.strip()]
            if not found:
                raise SettingsError("HIVE_MCP_AUTH_TOKEN: no token in the value (tokens are comma-separated)")
        if self.auth_token_file is not None:
            path = self.auth_token_file
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as UTF-8 text"
                raise SettingsError(f"HIVE_MCP_AUTH_TOKEN_FILE: cannot read {str(path)!r}: {why}") from None
            tokens = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            if not tokens:
                raise SettingsError(f"HIVE_MCP_AUTH_TOKEN_FILE: no token in {str(path)!r} (one per line)")
            found += [("HIVE_MCP_AUTH_TOKEN_FILE", t) for t in tokens]
        for source in ("HIVE_MCP_AUTH_TOKEN", "HIVE_MCP_AUTH_TOKEN_FILE"):
            for n, token in enumerate((t for s, t in found if s == source), 1):
                if not all("\x21" <= c <= "\x7e" and c != "," for c in token):
                    raise SettingsError(
                        f"{source}: token {n} has a character that cannot be sent in an Authorization header "
                        "(use printable ASCII without spaces or commas, e.g. from `openssl rand -hex 32`)"
                    )
        return tuple(dict.fromkeys(t for _, t in found))

    # end HTTP surface
    env_file: Path | None = None
    """The `.env` file that was read, if any (for the start-up log line)."""

    @field_validator("transport", mode="before")
    @classmethod
    def _transport_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().lower()
            return "http" if v in ("streamable-http", "streamable_http") else v
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().upper()
            return "WARNING" if v == "WARN" else v
        return v

    @field_validator("model", "api_base", "host", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("dump_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    # -- derived values ------------------------------------------------------------

    @property
    def sdk_transport(self) -> str:
        """The transport name `MCPServer.run()` takes ("http" is "streamable-http")."""
        return SDK_TRANSPORTS[self.transport]

    @property
    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    @property
    def dump_max_bytes(self) -> int:
        return int(self.dump_max_mb * 1024 * 1024)

    @property
    def dump_max_age(self) -> timedelta:
        return timedelta(days=self.dump_max_age_days)


def _nonempty(value: str | None) -> str | None:
    return value if value not in (None, "") else None


def _read_env_file(path: Path) -> dict[str, str]:
    """The file's entries; `dotenv_values` handles quoting, `export`, comments and ${VAR} expansion."""
    from dotenv import dotenv_values  # only when there is a file: off the start-up path otherwise

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: MutableMapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    export: bool = True,
) -> Settings:
    """Build `Settings` from flags > environment > `.env` > defaults.

    `flags` maps field names to values; a None value means "not given". `environ`
    defaults to `os.environ`. The `.env` file is `env_file` if given (it must then
    exist), else `.env` in `cwd` (default: the working directory) if present.
    With `only`, just those settings are read; the rest keep their defaults, so a
    bad unrelated variable does not break, say, `hive-mcp dumps list`.
    With `export`, `.env` entries other than `HIVE_MCP_*` are copied into `environ`
    when not already set there, for litellm (see the module docstring).

    Raises SettingsError with a one-line message naming the flag or variable.
    """
    environ = os.environ if environ is None else environ
    flags = dict(flags or {})
    if "api_key" in flags:
        raise SettingsError(
            "the API key cannot be given as a flag (command lines are visible in `ps`): "
            "set HIVE_MCP_API_KEY in the environment or in .env"
        )
    unknown = set(flags) - set(_BY_FIELD)
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    wanted = set(_BY_FIELD) if only is None else set(only)

    if env_file is not None:
        path: Path | None = Path(env_file).expanduser()
        if not path.is_file():
            raise SettingsError(f"--env-file: no such file: {str(path)!r}")
    else:
        candidate = Path(cwd if cwd is not None else os.getcwd()) / DEFAULT_ENV_FILE
        path = candidate if candidate.is_file() else None
    try:
        dotenv = _read_env_file(path) if path is not None else {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None

    data: dict[str, Any] = {"env_file": path}
    labels: dict[str, tuple[str, Any]] = {}
    for spec in SETTINGS_FIELDS:
        if spec.field not in wanted:
            continue
        given = flags.get(spec.field)
        if given is not None:
            data[spec.field], labels[spec.field] = given, (spec.flag or spec.field, given)
        elif (value := _nonempty(environ.get(spec.env))) is not None:
            data[spec.field], labels[spec.field] = value, (spec.env, value)
        elif (value := _nonempty(dotenv.get(spec.env))) is not None:
            data[spec.field], labels[spec.field] = value, (f"{spec.env} (from {path})", value)
    if "dump_dir" not in data:
        # HIVE_HOME may come from .env too; the real environment still wins.
        merged = {**{k: v for k, v in dotenv.items() if v}, **{k: v for k, v in environ.items() if v}}
        data["dump_dir"] = default_dump_dir(merged)

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, labels) from None

    if export:
        for key, value in dotenv.items():
            if not key.startswith(ENV_PREFIX) and key not in environ:
                environ[key] = value
    return settings


def _one_line(exc: ValidationError, labels: Mapping[str, tuple[str, Any]]) -> SettingsError:
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    label, raw = labels.get(field, (_BY_FIELD[field].env if field in _BY_FIELD else field, err.get("input")))
    msg = str(err["msg"]).replace("\n", " ")
    if field == "api_key":  # never echo a key, even a malformed one
        return SettingsError(f"{label}: {msg}")
    return SettingsError(f"{label}: invalid value {str(raw)!r}: {msg}")
