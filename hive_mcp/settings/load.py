"""Reading the settings: flags, then the environment, then `.env`, then the defaults; one-line errors."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import NoDecode

from ..home import HOME_VAR, home_problem
from ..text import utf8_text
from .fields import SETTING_SOURCES, DEFAULT_ENV_FILE, ENV_PREFIX, Settings, SettingsError, SettingSpec, SettingSources

logger = logging.getLogger("hive_mcp.settings")


def _spec(name: str, info: Any) -> SettingSpec:
    extra = info.json_schema_extra
    annotation = info.annotation
    choices = tuple(getattr(annotation, "__args__", ())) if extra["choices"] else None
    listed = any(m is NoDecode or isinstance(m, NoDecode) for m in info.metadata)
    kind = "switch" if annotation is bool else "list" if listed else "value"
    return SettingSpec(
        field=name,
        env=ENV_PREFIX + name.upper(),
        flag=extra["flag"],
        help=info.description,
        metavar=extra["metavar"],
        group=extra["group"],
        choices=choices,
        kind=kind,
    )


SETTINGS_FIELDS: tuple[SettingSpec, ...] = tuple(
    _spec(name, info) for name, info in Settings.model_fields.items() if isinstance(info.json_schema_extra, dict)
)
"""Every setting, in declaration order: what `--help` and the flags are built from."""
_BY_FIELD = {s.field: s for s in SETTINGS_FIELDS}


def read_env_file(path: Path) -> dict[str, str]:
    """The file's entries; `dotenv_values` handles quoting, `export`, comments and ${VAR} expansion.

    A line it cannot parse is skipped with one warning that names this file (python-dotenv's own
    names only the line). A file that is not UTF-8 is a SettingsError naming it and the line; OSError
    when it cannot be read.
    """
    from dotenv import dotenv_values  # only when there is a file: off the start-up path otherwise

    try:
        text = utf8_text(path.read_bytes())
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    dotenv_log = logging.getLogger("dotenv.main")
    naming = _NameTheFile(path)
    dotenv_log.addFilter(naming)
    try:
        return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    finally:
        dotenv_log.removeFilter(naming)


class _NameTheFile(logging.Filter):
    """Rewrites python-dotenv's warnings for `path` as ours, naming the file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            line = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            logger.warning("%s: line %s is not NAME=value and was skipped", self.path, line)
            return False
        return True


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
    when not already set there, for litellm (see the module docstring); HIVE_HOME is, with or without it.

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
        dotenv = read_env_file(path) if path is not None else {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None

    given = {name: value for name, value in flags.items() if value is not None and name in wanted}
    names = {_BY_FIELD[name].env for name in wanted}
    sources = SettingSources(
        environ={k: v for k, v in environ.items() if k in names},
        dotenv={k: v for k, v in dotenv.items() if k in names},
        # HIVE_HOME may come from .env too; the real environment still wins.
        everything={**{k: v for k, v in dotenv.items() if v}, **{k: v for k, v in environ.items() if v}},
    )
    if (problem := home_problem(sources.everything)) is not None:  # every command keeps files there
        raise SettingsError(problem)
    token = SETTING_SOURCES.set(sources)
    try:
        settings = Settings(**given, env_file=path)
    except ValidationError as exc:
        raise _one_line(exc, given, sources, path) from None
    finally:
        SETTING_SOURCES.reset(token)

    for key, value in dotenv.items():
        # HIVE_HOME always: every store of the process finds its files through the environment (`home.hive_home`).
        if (export or key == HOME_VAR) and not key.startswith(ENV_PREFIX) and key not in environ:
            environ[key] = value
    return settings


def _one_line(exc: ValidationError, given: Mapping[str, Any], sources: SettingSources, path: Path | None) -> SettingsError:
    """The first error, as one line naming where the bad value came from: the flag, the variable or `.env`."""
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    spec = _BY_FIELD.get(field)
    label, raw = field, err.get("input")
    if spec is not None:
        label = spec.env
        if field in given:
            label, raw = spec.flag or field, given[field]
        elif sources.environ.get(spec.env):
            raw = sources.environ[spec.env]
        elif sources.dotenv.get(spec.env):
            label, raw = f"{spec.env} (from {path})", sources.dotenv[spec.env]
    msg = str(err["msg"]).replace("\n", " ")
    if field in ("api_key", "auth_token", "state_password", "metrics_token"):  # never echo a secret, even a malformed one
        return SettingsError(f"{label}: {msg}")
    if field == "state_url":  # its userinfo or query may hold a password: the check names the part that is wrong
        return SettingsError(f"{label}: {msg.removeprefix('Value error, ')}")
    return SettingsError(f"{label}: invalid value {str(raw)!r}: {msg}")
