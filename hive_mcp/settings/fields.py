"""The settings, each declared once: type and checks, default, help text and flag (`setting(...)`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from ..state_url import SCHEMES_TEXT, check_state_url, with_password
from ..defaults import (
    CONVERSATION_MAX, CONVERSATION_MAX_BYTES, CONVERSATION_MAX_TURNS, CONVERSATION_TTL_S, DEFAULT_DEADLINE_S,
    DEFAULT_HEARTBEAT_S, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES_BYTES, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_INPUT_BYTES, DEFAULT_MODEL, DEFAULT_QUEUE_TIMEOUT_S, DUMP_MAX_AGE_DAYS, DUMP_MAX_COUNT, DUMP_MAX_MB,
    MAX_USD, MIB, RESULT_INLINE_TOKENS, RESULT_TTL_S, SPEND_CALLS_DAYS, SPEND_KEEP_DAYS, TASK_MAX_TTL_S,
    TASKS_PER_CALLER,
)  # fmt: skip
from ..dumps import default_dump_dir
from ..files.roots import Root, parse_roots
from ..tokens import bearer_tokens

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "SettingSpec", "setting"]

ENV_PREFIX = "HIVE_MCP_"
DEFAULT_ENV_FILE = ".env"

Transport = Literal["stdio", "http", "sse"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _split_names(v: Any) -> Any:
    """`a, b` as its names, stripped, empty ones left out; anything else is validated as it is."""
    if isinstance(v, str):
        return tuple(p.strip() for p in v.split(",") if p.strip())
    return v


Names = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_names)]
"""Comma-separated in the environment (split by `_split_names`, not decoded as JSON); a list from repeated flags."""

ToolName = Literal[
    "complete", "stream_complete", "list_failed_requests", "list_models", "dashboard", "list_conversations",
    "read_result",
]
"""Every tool the server can offer, as HIVE_MCP_TOOLS names them (a test holds this to what the server defines)."""
FileRootsSetting = Annotated[tuple[Root, ...] | None, NoDecode, BeforeValidator(parse_roots)]
"""A path list (`files.roots`): None unset, () for `none`."""


# Upper bounds. Every number setting has one (`le=`; a test holds every int and float setting to it): past
# them, what is derived from the value overflows later, on every call or at start-up, instead of being
# refused here in one line naming the variable: a date a deadline or a retention reaches (datetime ends in
# year 9999), a timedelta (at most 999,999,999 days), an integer a 64-bit SQLite or Redis column holds.
# Each is far beyond any sensible value, so it only refuses mistakes.
MAX_SECONDS = 315_360_000
"""Ten years: the longest duration in seconds (deadlines, timeouts, TTLs, idle times)."""
MAX_DAYS = 36_500
"""A hundred years: the longest retention in days."""
MAX_COUNT = 1_000_000_000
"""The most of anything counted (calls, sessions, conversations, turns, tokens, dumps, processes)."""
MAX_BYTES = 1 << 50
"""One PiB: the largest size in bytes."""


class SettingsError(ValueError):
    """A setting has an invalid value. The message is one line naming the flag or variable."""


def setting(
    default: Any = None,
    help: str = "",  # noqa: A002 - the word argparse uses
    *,
    flag: str | None = None,
    metavar: str = "VALUE",
    group: str = "serving",
    choices: bool = False,
    **field: Any,
) -> Any:
    """A field that is a setting: `help` for `--help`; `flag` if it may be given on the command line.

    `group` is the `--help` section of the flag; with `choices`, the flag takes
    only the values of the field's Literal type. Other keywords go to `Field`.
    """
    extra = {"flag": flag, "metavar": metavar, "group": group, "choices": choices}
    if "default_factory" not in field:
        field["default"] = default
    return Field(description=help, json_schema_extra=extra, **field)


@dataclass(frozen=True)
class SettingSpec:
    """One setting as the command line shows it: derived from its field in `Settings`."""

    field: str
    env: str
    flag: str | None
    help: str
    metavar: str = "VALUE"
    group: str = "serving"
    choices: tuple[str, ...] | None = None
    kind: Literal["value", "switch", "list"] = "value"


@dataclass(frozen=True)
class SettingSources:
    """What `load_settings` has `Settings` read: the environment and the `.env` entries, narrowed to the
    settings wanted, and both whole for the defaults that follow other variables (HIVE_HOME)."""

    environ: Mapping[str, str]
    dotenv: Mapping[str, str]
    everything: Mapping[str, str]


SETTING_SOURCES: ContextVar[SettingSources | None] = ContextVar("hive_mcp_settings_sources", default=None)
"""Set while `load_settings` builds a `Settings`. Unset, `Settings(...)` takes its keywords and the defaults only."""


def _default_dump_dir() -> Path:
    sources = SETTING_SOURCES.get()
    return default_dump_dir(sources.everything if sources is not None else os.environ)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Lower-case keys, as the source looks them up; `load_settings` passes only the exact HIVE_MCP_* names.
        return {k.lower(): v for k, v in self._mapping.items() if v != ""}  # empty counts as unset


class Settings(BaseSettings):
    """The server's configuration. Build it with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (the keywords), then the environment, then `.env`: first found wins."""
        sources = SETTING_SOURCES.get()
        if sources is None:
            return (init_settings,)
        return (
            init_settings,
            _MappingSource(settings_cls, sources.environ),
            _MappingSource(settings_cls, sources.dotenv),
        )

    model: str = setting(
        DEFAULT_MODEL,
        f"default litellm model, e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5 (default: {DEFAULT_MODEL})",
        flag="--model",
        metavar="MODEL",
        min_length=1,
    )
    api_base: str | None = setting(
        None, "base URL of the provider's API, e.g. a proxy or a local OpenAI-compatible server", flag="--api-base",
        metavar="URL")
    api_key: SecretStr | None = setting(
        None,
        "API key for the default model, never a flag (flags show in `ps`); unset: litellm's own variable "
        "for the provider (e.g. OPENAI_API_KEY)",
        metavar="KEY",
        repr=False,
    )
    config: Path | None = setting(
        None, "models config in the LiteLLM proxy's config.yaml format: model groups, aliases, fallbacks, "
        "Redis-shared cooldowns (default: none, one model)", flag="--config", metavar="PATH")
    dump_dir: Path = setting(
        help="directory for failed-request dumps (default: $HIVE_HOME/failed_requests, else ~/.hive/failed_requests)",
        flag="--dump-dir",
        metavar="DIR",
        group="common",
        default_factory=_default_dump_dir,
    )
    transport: Transport = setting(
        "stdio",
        "stdio (default): for clients that start the server; http: streamable HTTP at http://HOST:PORT/mcp; "
        "sse: the legacy HTTP+SSE transport at /sse",
        flag="--transport",
        metavar="NAME",
        choices=True,
    )
    host: str = setting(
        "127.0.0.1",
        "address to bind for http/sse (default: 127.0.0.1); every address (0.0.0.0, ::) needs --allowed-host",
        flag="--host",
        metavar="HOST",
        min_length=1,
    )
    port: int = setting(8765, "port for http/sse (default: 8765)", flag="--port", metavar="PORT", ge=1, le=65535)
    heartbeat_s: float = setting(
        DEFAULT_HEARTBEAT_S,
        "seconds between progress heartbeats while a call waits on the model, so clients do not time out "
        f"(default: {DEFAULT_HEARTBEAT_S:g})",
        flag="--heartbeat",
        metavar="SECONDS",
        gt=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
    )
    dump_max_count: int = setting(
        DUMP_MAX_COUNT, f"keep at most this many dumps (default: {DUMP_MAX_COUNT})", metavar="N", ge=0, le=MAX_COUNT)
    dump_max_mb: float = setting(
        DUMP_MAX_MB, f"keep at most this many MB of dumps (default: {DUMP_MAX_MB:g})", metavar="MB", ge=0,
        le=MAX_BYTES // MIB, allow_inf_nan=False)
    dump_max_age_days: float = setting(
        DUMP_MAX_AGE_DAYS, f"delete dumps older than this (default: {DUMP_MAX_AGE_DAYS:g})", metavar="DAYS",
        ge=0, le=MAX_DAYS, allow_inf_nan=False)
    log_level: LogLevel = setting(
        "INFO",
        "DEBUG | INFO | WARNING | ERROR | CRITICAL, logged to stderr (default: INFO)",
        flag="--log-level",
        metavar="LEVEL",
    )
    # Cost control
    allowed_models: Names = setting(
        (),
        "fnmatch patterns of the models calls may name, e.g. gpt-4o*,anthropic/* (default: any; beyond "
        "loopback, only the default model, which is always allowed)",
        metavar="PATTERNS",
    )
    """fnmatch patterns; empty means any model (see `hive_mcp.exposure.allowed_models`)."""
    max_tokens: int | None = setting(None, "cap on a call's max_tokens (default: no cap)", metavar="N", ge=1, le=MAX_COUNT)
    default_max_tokens: int | None = setting(
        None, "max_tokens of a call that asks for none (default: the provider's own)", metavar="N", ge=1,
        le=MAX_COUNT)
    max_in_flight: int = setting(
        DEFAULT_MAX_IN_FLIGHT, f"upstream calls at once; more wait (default: {DEFAULT_MAX_IN_FLIGHT})", metavar="N", ge=1,
        le=MAX_COUNT)
    caller_in_flight: int | None = setting(
        None, "upstream calls one caller may have in flight; more wait behind their own (default: half of "
        "HIVE_MCP_MAX_IN_FLIGHT, at least 1)", metavar="N", ge=1, le=MAX_COUNT)
    queue_timeout_s: float = setting(
        DEFAULT_QUEUE_TIMEOUT_S,
        f"seconds a call may wait for a slot (default: {DEFAULT_QUEUE_TIMEOUT_S:g})",
        metavar="SECONDS",
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
    )
    deadline_s: float = setting(
        DEFAULT_DEADLINE_S,
        f"seconds a call may take, retries included; calls may ask for less (default: {DEFAULT_DEADLINE_S:g})",
        metavar="SECONDS",
        gt=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
    )
    max_input_bytes: int = setting(
        DEFAULT_MAX_INPUT_BYTES, f"largest input, UTF-8 JSON bytes (default: {DEFAULT_MAX_INPUT_BYTES})",
        metavar="BYTES", ge=1, le=MAX_BYTES,
    )

    # end Cost control
    # HTTP surface
    auth_token: SecretStr | None = setting(
        None,
        "bearer tokens http/sse clients must send, comma-separated, each NAME:TOKEN or TOKEN; never a flag",
        metavar="TOKEN",
        repr=False,
    )
    """Comma-separated bearer tokens; read them with `auth_tokens()`."""
    auth_token_file: Path | None = setting(
        None, "a file of bearer tokens, one per line (# comments)", metavar="PATH"
    )
    allow_unauthenticated: bool = setting(
        False,
        "serve http/sse on a non-loopback address without a token (default: refuse to start)",
        flag="--allow-unauthenticated",
    )
    allowed_hosts: Names = setting(
        (),
        "more Host header values to accept (others get 421), comma-separated or repeated, e.g. "
        "mcp.example.com (any port) or 10.0.0.5:8765; loopback and the bound host:port always are",
        flag="--allowed-host",
        metavar="HOST",
    )
    allowed_origins: Names = setting(
        (),
        "more Origin header values to accept, comma-separated or the flag repeated, e.g. https://app.example.com "
        "(others get 403)",
        flag="--allowed-origin",
        metavar="ORIGIN",
    )
    max_body_bytes: int = setting(
        4 * 1024 * 1024, "largest HTTP body; more gets 413 (default: 4 MiB)", metavar="BYTES", ge=1, le=MAX_BYTES
    )
    sessions_per_caller: int = setting(
        64, "MCP sessions (or SSE streams) one caller may have open; one more gets 429 (default: 64)",
        metavar="N", ge=1, le=MAX_COUNT)
    session_idle_s: float = setting(
        600.0, "idle seconds before a session ends (default: 600)", metavar="SECONDS",
        gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    header_timeout_s: float = setting(
        10.0, "seconds a client has to send a request's headers before its connection is closed (default: 10)",
        metavar="SECONDS", gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    max_unauthenticated: int = setting(
        64, "connections still sending their headers at once; past it the oldest waiting is closed (default: 64)",
        metavar="N", ge=1, le=MAX_COUNT)
    metrics_token: SecretStr | None = setting(
        None, "/metrics bearer token (unset: loopback only)",
        metavar="TOKEN", repr=False)
    otel_capture_content: Literal["on", "off"] = setting(
        "off", "on: prompt and answer text on spans, redacted")
    metrics_port: int | None = setting(
        None, "/metrics on this port too", flag="--metrics-port", metavar="PORT", ge=1, le=65535)
    shutdown_grace_s: float = setting(
        10.0,
        "seconds calls in flight and running tasks get to finish after SIGTERM, then end in error (default: 10)",
        metavar="SECONDS",
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
    )

    workers: int = setting(
        1,
        "processes serving http on one port (default: 1); above 1 serves stateless streamable HTTP; at most 4 per "
        "CPU unless --force",
        flag="--workers",
        metavar="N",
        ge=1,
        le=MAX_COUNT,
    )
    stateless: bool = setting(
        False,
        "serve streamable HTTP without sessions, so any instance behind a load balancer answers any request "
        "(on with --workers above 1)",
        flag="--stateless",
    )
    force: bool = setting(False, "allow --workers above 4 per CPU", flag="--force")

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        """Repeated flags give a list of `a,b`, each split too (a string is split by `Names`)."""
        if isinstance(v, (list, tuple)) and all(isinstance(p, str) for p in v):
            return tuple(x.strip() for p in v for x in p.split(",") if x.strip())
        return v

    @field_validator("auth_token_file", mode="after")
    @classmethod
    def _expand_token_file(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    def auth_tokens(self) -> tuple[str, ...]:
        """The bearer tokens from HIVE_MCP_AUTH_TOKEN and HIVE_MCP_AUTH_TOKEN_FILE; () when neither is set.

        Raises SettingsError, naming the variable and never a token (see `hive_mcp.tokens`).
        """
        value = self.auth_token.get_secret_value() if self.auth_token is not None else None
        try:
            return bearer_tokens(value, self.auth_token_file)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    # end HTTP surface
    # Conversations
    conversations: Literal["on", "off"] = setting("on", "on: results carry a conversation_id (default: on)", metavar="on|off")
    conversation_ttl_s: int = setting(
        CONVERSATION_TTL_S, f"seconds unused ones are kept (default: {CONVERSATION_TTL_S})", ge=1, le=MAX_SECONDS)
    conversation_max: int = setting(
        CONVERSATION_MAX, f"conversations kept, LRU out first (default: {CONVERSATION_MAX})", ge=1, le=MAX_COUNT)
    conversation_max_turns: int = setting(
        CONVERSATION_MAX_TURNS, f"turns one conversation holds (default: {CONVERSATION_MAX_TURNS})", metavar="N", ge=1,
        le=MAX_COUNT)
    conversation_max_bytes: int = setting(
        CONVERSATION_MAX_BYTES, f"bytes a conversation holds (default: {CONVERSATION_MAX_BYTES // MIB} MiB)", ge=1,
        le=MAX_BYTES)
    state_url: str | None = setting(None, f"{SCHEMES_TEXT} URL to keep state in (default: SQLite in the hive "
                                    "home)", metavar="URL")
    state_password: SecretStr | None = setting(None, "password of HIVE_MCP_STATE_URL", repr=False)
    _state_scheme = field_validator("state_url")(check_state_url)
    # end Conversations
    # Big answers
    result_inline_tokens: int = setting(
        RESULT_INLINE_TOKENS, f"tokens of an answer inline (default: {RESULT_INLINE_TOKENS})", metavar="TOKENS", ge=64,
        le=MAX_COUNT)
    result_ttl_s: int = setting(
        RESULT_TTL_S, f"seconds a long answer's link works (default: {RESULT_TTL_S})", metavar="SECONDS", ge=1,
        le=MAX_SECONDS)
    # end Big answers
    # Tasks
    tasks_per_caller: int = setting(
        TASKS_PER_CALLER, f"a caller's unfinished tasks; 0: off (default: {TASKS_PER_CALLER})", metavar="N", ge=0,
        le=MAX_COUNT)
    task_max_ttl_s: int = setting(TASK_MAX_TTL_S, f"longest task TTL, seconds (default: {TASK_MAX_TTL_S})", ge=1,
                                    le=MAX_SECONDS)
    # end Tasks
    # Spend
    budget_usd_day: float | None = setting(
        None, "USD all calls may spend per UTC day (default: none)", metavar="USD", ge=0, le=MAX_USD,
        allow_inf_nan=False)
    budget_usd_month: float | None = setting(
        None, "USD all calls together may spend per UTC month (default: none; or litellm_settings.max_budget, "
        "daily with budget_duration: 1d)", metavar="USD", ge=0, le=MAX_USD,
        allow_inf_nan=False)
    budgets: dict[str, Any] | None = setting(
        None, "budgets per caller and per model group, as JSON or in the config's hive_mcp: section "
        '(e.g. {"callers": {"alice": {"day": 5}}})', metavar="JSON")
    admins: Names = setting((), "callers who see every caller's dumps, conversations, spend",
                            metavar="NAMES")
    spend_keep_days: int = setting(SPEND_KEEP_DAYS, f"days of daily spend totals kept (default: {SPEND_KEEP_DAYS})",
                                   metavar="DAYS", ge=31, le=MAX_DAYS)
    spend_calls_days: int = setting(SPEND_CALLS_DAYS, f"days each call stays in the ledger (default: "
                                    f"{SPEND_CALLS_DAYS})", metavar="DAYS", ge=1, le=MAX_DAYS)

    # end Spend
    # Files and tools
    file_roots: FileRootsSetting = setting(
        None, f"directories `files` may read, {os.pathsep}-separated, PATH=NAME,NAME for those callers only; none: off "
        "(default: the working directory over stdio, none over http)",
        metavar="PATHS")
    max_file_bytes: int = setting(
        DEFAULT_MAX_FILE_BYTES, f"largest file a call may attach (default: {DEFAULT_MAX_FILE_BYTES // MIB} MiB)", metavar="BYTES",
        ge=1, le=MAX_BYTES)
    max_files_bytes: int = setting(
        DEFAULT_MAX_FILES_BYTES, f"bytes of files a call may attach (default: {DEFAULT_MAX_FILES_BYTES // MIB} MiB)",
        metavar="BYTES", ge=1, le=MAX_BYTES)
    tools: Annotated[tuple[ToolName, ...], NoDecode, BeforeValidator(_split_names)] = setting(
        (), "tools to offer, e.g. complete,list_models (default: all)", metavar="NAMES")
    # end Files and tools
    env_file: Path | None = None
    """The `.env` file that was read, if any (for the start-up log line). Not a setting."""

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
    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    @property
    def metrics_token_value(self) -> str | None:
        return self.metrics_token.get_secret_value() if self.metrics_token is not None else None

    @property
    def state_password_value(self) -> str | None:
        return self.state_password.get_secret_value() if self.state_password is not None else None

    @property
    def state_url_with_password(self) -> str | None:
        """HIVE_MCP_STATE_URL with HIVE_MCP_STATE_PASSWORD in it (unless the URL carries its own); None when unset."""
        return with_password(self.state_url, self.state_password_value) if self.state_url else None

    @property
    def dump_max_bytes(self) -> int:
        return int(self.dump_max_mb * MIB)

    @property
    def dump_max_age(self) -> timedelta:
        return timedelta(days=self.dump_max_age_days)
