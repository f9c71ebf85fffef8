"""The models config: the LiteLLM proxy's `config.yaml`, read as its users write it.

The file format is the public contract: `model_list` (groups of deployments),
`router_settings` (litellm's Router), `litellm_settings`, `environment_variables`,
`include:` of other files, and a `hive_mcp:` section for this server's own
settings. A team's proxy config works unchanged; what only the proxy understands
is ignored with one warning naming it.

Where the proxy's loader is lax this one is strict, because a config mistake
found at start-up costs a minute and one found in production costs calls:
`os.environ/NAME` is resolved in every string (inside lists too) and a missing
variable is an error; `router_settings` keys are checked against the Router's
declared parameters; `litellm_settings` are taken from an allow-list, never set
on the litellm module blindly. Every error is one line naming the file, the line,
the key and what is wrong.

This module imports neither litellm nor mcp: it runs before the server answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..redact import url_secrets
from .router_names import router_parameters, routing_strategies

__all__ = ["ConfigError", "ModelsConfig", "load_config"]

ENV_PREFIX = "os.environ/"

_SECTIONS = frozenset({"model_list", "router_settings", "litellm_settings", "environment_variables", "hive_mcp"})
_INCLUDE = "include"

# litellm settings that mean the same for a client library as for the proxy, with the type each takes.
_LITELLM_SETTINGS: dict[str, tuple[type, ...]] = {
    "drop_params": (bool,),
    "modify_params": (bool,),
    "request_timeout": (int, float),
    "force_ipv4": (bool,),
    "ssl_verify": (bool, str),
}
# Budgets are hive-mcp's own (a per-process litellm cap would not hold across processes).
_BUDGET_SETTINGS = frozenset({"max_budget", "budget_duration"})
# Router arguments hive-mcp decides itself: one retry policy, in provider/retry.py.
_OWNED_ROUTER_SETTINGS = {
    "num_retries": "taken as hive-mcp's max_retries",
    "retry_after": "hive-mcp's retry policy sets the delays",
    "retry_policy": "hive-mcp's retry policy decides which errors are retried",
    "model_group_retry_policy": "hive-mcp's retry policy decides which errors are retried",
}
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

Path_ = tuple[str | int, ...]


class ConfigError(ValueError):
    """A config file that cannot be served. `str()` is one line: file, line, key, what is wrong."""


@dataclass(frozen=True)
class ModelsConfig:
    """A checked config, `os.environ/` references resolved."""

    path: Path
    model_list: list[dict[str, Any]]
    router_settings: dict[str, Any]
    litellm_settings: dict[str, Any]
    hive_mcp: dict[str, Any]
    environment: dict[str, str]
    budget: dict[str, Any]
    num_retries: int | None
    secrets: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """Model group names in the order they first appear."""
        return list(dict.fromkeys(d["model_name"] for d in self.model_list))

    def callable_names(self) -> list[str]:
        """What a client may pass as `model`: every group, then every alias."""
        return [*self.groups, *(a for a in self.aliases if a not in self.groups)]


# ---------------------------------------------------------------------------
# Reading YAML with line numbers
# ---------------------------------------------------------------------------


@dataclass
class _Source:
    """One file's data and the line of every value in it, by path."""

    file: Path
    data: dict[str, Any]
    lines: dict[Path_, int]

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _read(file: Path) -> _Source:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        data = {} if node is None else _build(loader, node, (), lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}:{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: line 1: the file must be a mapping of sections (model_list, router_settings, ...)")
    return _Source(file, data, lines)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<:` merge keys, as yaml.safe_load applies them
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---------------------------------------------------------------------------
# Loading: includes, then checks, then resolution
# ---------------------------------------------------------------------------


class _Loader:
    def __init__(self, file: Path, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.warnings: list[str] = []
        self.root = file
        # Where each merged value came from: top-level key -> source; model_list entries one by one.
        self.origin: dict[str, _Source] = {}
        self.entry_origin: list[tuple[_Source, int]] = []
        self.merged: dict[str, Any] = {}
        self._seen: set[Path] = set()
        self._include(file)

    def error(self, path: Path_, what: str) -> ConfigError:
        source = self._source_of(path)
        if source is None:
            return ConfigError(f"{self.root}: {_dotted(path)}: {what}")
        local = path
        if path[:1] == ("model_list",) and len(path) > 1 and isinstance(path[1], int):
            source, index = self.entry_origin[path[1]]
            local = ("model_list", index, *path[2:])
        line = source.line(local)
        at = f" line {line}:" if line is not None else ""
        return ConfigError(f"{source.file}:{at} {_dotted(path) or 'top level'}: {what}")

    def _source_of(self, path: Path_) -> _Source | None:
        if path[:1] == ("model_list",) and len(path) > 1 and isinstance(path[1], int):
            return self.entry_origin[path[1]][0]
        return self.origin.get(str(path[0])) if path else None

    def _include(self, file: Path) -> None:
        file = file.resolve()
        if file in self._seen:
            return
        self._seen.add(file)
        source = _read(file)
        includes = source.data.pop(_INCLUDE, None)
        for key, value in source.data.items():
            # As the proxy merges includes: lists are concatenated, anything else is replaced.
            if isinstance(value, list) and isinstance(self.merged.get(key), list):
                self.merged[key] = [*self.merged[key], *value]
            else:
                self.merged[key] = value
            if key == "model_list" and isinstance(value, list):
                self.entry_origin.extend((source, i) for i in range(len(value)))
            self.origin[str(key)] = source
        if includes is None:
            return
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            self.origin[_INCLUDE] = source
            raise self.error((_INCLUDE,), "must be a list of file paths")
        for entry in includes:
            target = Path(entry) if Path(entry).is_absolute() else file.parent / entry
            if not target.is_file():
                line = source.line((_INCLUDE,))
                raise ConfigError(f"{file}: line {line}: include: {entry}: no such file (paths are relative to {file.parent})")
            self._include(target)

    # -- os.environ/ references ------------------------------------------------------

    def resolve(self, value: Any, path: Path_) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :].strip()
            if not name:
                raise self.error(path, f"{value!r} names no variable")
            if name not in self.environ:
                raise self.error(path, f"{ENV_PREFIX}{name} is not set (in the environment or the .env file)")
            return self.environ[name]
        return value


def load_config(file: str | Path, environ: Mapping[str, str]) -> ModelsConfig:
    """Read and check `file`; `environ` (the environment over the `.env` file) resolves `os.environ/`."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    loader = _Loader(path, environ)
    merged = loader.merged

    unknown = sorted(str(k) for k in merged if k not in _SECTIONS)
    if unknown:
        loader.warnings.append(f"{path}: ignored (only the LiteLLM proxy uses them): {', '.join(unknown)}")

    env_section = _mapping(loader, merged, "environment_variables")
    environment = {str(k): str(v) for k, v in loader.resolve(env_section, ("environment_variables",)).items()}
    # The file's own environment_variables answer its references, the real environment first.
    loader.environ = {**environment, **environ}

    model_list = _model_list(loader, merged)
    groups = set(d["model_name"] for d in model_list)
    router_settings, num_retries = _router_settings(loader, merged, groups)
    aliases = _aliases(loader, router_settings, groups)
    litellm_settings, budget, more_retries = _litellm_settings(loader, merged)
    hive = loader.resolve(_mapping(loader, merged, "hive_mcp"), ("hive_mcp",))
    return ModelsConfig(
        path=path,
        model_list=model_list,
        router_settings=router_settings,
        litellm_settings=litellm_settings,
        hive_mcp={str(k).lower(): v for k, v in hive.items()},
        environment=environment,
        budget=budget,
        num_retries=num_retries if num_retries is not None else more_retries,
        secrets=tuple(sorted(_secrets(
            {"model_list": model_list, "router_settings": router_settings, "environment_variables": environment}
        ))),
        warnings=tuple(loader.warnings),
        aliases=aliases,
    )


def _mapping(loader: _Loader, merged: dict[str, Any], key: str) -> dict[str, Any]:
    value = merged.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise loader.error((key,), f"must be a mapping, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _model_list(loader: _Loader, merged: dict[str, Any]) -> list[dict[str, Any]]:
    raw = merged.get("model_list")
    if raw is None:
        raise ConfigError(f"{loader.root}: model_list: missing: the file must list at least one model")
    if not isinstance(raw, list) or not raw:
        raise loader.error(("model_list",), "must be a non-empty list of {model_name, litellm_params} entries")
    out = []
    for i, entry in enumerate(raw):
        here: Path_ = ("model_list", i)
        if not isinstance(entry, dict):
            raise loader.error(here, f"must be a mapping with model_name and litellm_params, not {_kind(entry)}")
        name = entry.get("model_name")
        if name is None:
            raise loader.error(here, "missing model_name (the group name clients call)")
        if not isinstance(name, str) or not name.strip():
            raise loader.error((*here, "model_name"), "must be a non-empty string")
        params = entry.get("litellm_params")
        if not isinstance(params, dict):
            what = "missing" if params is None else f"must be a mapping, not {_kind(params)}"
            raise loader.error((*here, "litellm_params"), f"{what} (it needs at least `model`)")
        model = params.get("model")
        if not isinstance(model, str) or not model.strip():
            raise loader.error((*here, "litellm_params", "model"), "missing: the litellm model string, e.g. openai/gpt-4o-mini")
        info = entry.get("model_info")
        if info is not None and not isinstance(info, dict):
            raise loader.error((*here, "model_info"), f"must be a mapping, not {_kind(info)}")
        resolved = loader.resolve(entry, here)
        resolved["model_name"] = name.strip()
        out.append(resolved)
    return out


def _router_settings(loader: _Loader, merged: dict[str, Any], groups: set[str]) -> tuple[dict[str, Any], int | None]:
    raw = loader.resolve(_mapping(loader, merged, "router_settings"), ("router_settings",))
    known = router_parameters()
    unknown = sorted(k for k in raw if k not in known and k not in _OWNED_ROUTER_SETTINGS)
    if unknown:
        loader.warnings.append(f"router_settings: ignored (litellm's Router takes no such argument): {', '.join(unknown)}")
    owned = {k: v for k, v in raw.items() if k in _OWNED_ROUTER_SETTINGS}
    for key in sorted(k for k in owned if k != "num_retries"):
        loader.warnings.append(f"router_settings.{key}: ignored: {_OWNED_ROUTER_SETTINGS[key]}")
    settings = {k: v for k, v in raw.items() if k in known and k not in _OWNED_ROUTER_SETTINGS and k != "model_list"}

    strategy = settings.get("routing_strategy")
    if strategy is not None and strategy not in routing_strategies():
        raise loader.error(
            ("router_settings", "routing_strategy"),
            f"unknown routing strategy {strategy!r}; litellm knows: {', '.join(routing_strategies())}",
        )
    for key in ("allowed_fails", "cooldown_time", "timeout", "stream_timeout", "redis_port"):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise loader.error(("router_settings", key), f"must be a number of at least 0, not {value!r}")
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        _check_fallbacks(loader, settings.get(key), key, groups)
    default = settings.get("default_fallbacks")
    if default is not None:
        if not isinstance(default, list) or not all(isinstance(g, str) for g in default):
            raise loader.error(("router_settings", "default_fallbacks"), "must be a list of model group names")
        for j, g in enumerate(default):
            if g not in groups:
                raise loader.error(("router_settings", "default_fallbacks", j), f"{g!r} is not a model_name in model_list")

    retries = owned.get("num_retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise loader.error(("router_settings", "num_retries"), f"must be a whole number of at least 0, not {retries!r}")
    return settings, retries


def _check_fallbacks(loader: _Loader, value: Any, key: str, groups: set[str]) -> None:
    if value is None:
        return
    here: Path_ = ("router_settings", key)
    if not isinstance(value, list):
        raise loader.error(here, "must be a list like [{group: [fallback, ...]}]")
    for i, item in enumerate(value):
        if not isinstance(item, dict) or len(item) != 1:
            raise loader.error((*here, i), "each entry must be one {group: [fallback, ...]} mapping")
        (group, targets), = item.items()
        if group not in groups:
            raise loader.error((*here, i, group), f"{group!r} is not a model_name in model_list")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise loader.error((*here, i, group), "must be a list of model group names")
        for j, target in enumerate(targets):
            if target not in groups:
                raise loader.error((*here, i, group, j), f"{target!r} is not a model_name in model_list")


def _aliases(loader: _Loader, settings: dict[str, Any], groups: set[str]) -> dict[str, str]:
    raw = settings.get("model_group_alias") or {}
    here: Path_ = ("router_settings", "model_group_alias")
    if not isinstance(raw, dict):
        raise loader.error(here, "must be a mapping of alias: model group")
    aliases: dict[str, str] = {}
    for alias, target in raw.items():
        # litellm also takes {model: group, hidden: true}: a hidden alias is callable but not listed.
        group = target.get("model") if isinstance(target, dict) else target
        if not isinstance(group, str):
            raise loader.error((*here, alias), "must name a model group, or be {model: group, hidden: bool}")
        if group not in groups:
            raise loader.error((*here, alias), f"{group!r} is not a model_name in model_list")
        aliases[str(alias)] = group
    return aliases


def _litellm_settings(loader: _Loader, merged: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    raw = loader.resolve(_mapping(loader, merged, "litellm_settings"), ("litellm_settings",))
    settings: dict[str, Any] = {}
    budget: dict[str, Any] = {}
    ignored = []
    retries = None
    for key, value in raw.items():
        here: Path_ = ("litellm_settings", key)
        if key in _LITELLM_SETTINGS:
            types = _LITELLM_SETTINGS[key]
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                names = " or ".join(t.__name__ for t in types)
                raise loader.error(here, f"must be {names}, not {value!r}")
            if key == "request_timeout" and value <= 0:
                raise loader.error(here, f"must be more than 0, not {value!r}")
            settings[key] = value
        elif key in _BUDGET_SETTINGS:
            if key == "max_budget" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise loader.error(here, f"must be a number of USD, at least 0, not {value!r}")
            budget[key] = value
        elif key == "num_retries":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise loader.error(here, f"must be a whole number of at least 0, not {value!r}")
            retries = value
        else:
            ignored.append(str(key))
    if ignored:
        loader.warnings.append(f"litellm_settings: not applied by hive-mcp: {', '.join(sorted(ignored))}")
    return settings, budget, retries


def _secrets(value: Any, key: str = "") -> set[str]:
    """Every credential in the resolved config: values under key-like names, and what URLs carry (`url_secrets`)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= _secrets(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found |= _secrets(v, key)
    elif isinstance(value, str) and value:
        if _SECRET_KEY.search(key) and not key.endswith(("_env", "_name", "_file", "_path")):
            found.add(value)
        if _URL.match(value):
            found.update(url_secrets(value))
    return found
