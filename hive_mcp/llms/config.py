"""The models config: the LiteLLM proxy's `config.yaml`, read as its users write it.

The file format is the public contract: `model_list` (groups of deployments),
`router_settings` (litellm's Router), `litellm_settings`, `environment_variables`,
`include:` of other files, and a `hive_mcp:` section for this server's own
settings. A team's proxy config works unchanged; what only the proxy understands
is ignored with one warning naming it.

Where the proxy's loader is lax this one is strict, because a config mistake
found at start-up costs a minute and one found in production costs calls:
`os.environ/NAME` is resolved in every string (inside lists too); `router_settings`
keys are checked against the Router's declared parameters; a deployment's numeric
`model_info` and `litellm_params` keys, and its string and list `litellm_params`
keys (`config_types`), against litellm's types; `litellm_settings` are
taken from an allow-list, never set on the litellm module blindly. Every error is
one line naming the file, the line, the key and what is wrong.

As the proxy does, a deployment whose `os.environ/` variable is not set does not
stop the others: it is kept, marked (`unset`), left out of routing and named in
one warning; only a config with no usable deployment at all is an error. A
variable missing anywhere else is an error. The Router settings the proxy also
reads from `litellm_settings` (fallbacks, allowed_fails, cooldown_time) apply
from there where `router_settings` does not set them: litellm's Router takes its
own argument first and the module-level value only where the argument is unset.

This module imports neither litellm nor mcp: it runs before the server answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_credentials import SECTION as CREDENTIALS, check_credential_name, credential_list, credential_secrets
from .config_secrets import ENV_PREFIX, config_secrets
from .catalogue import is_pattern
from .config_fallbacks import check_fallback_settings
from .config_types import check_typed
from .router_names import Number, numeric_parameters, router_parameters, routing_strategies, typed_parameters
from .yaml_source import ConfigError, Path_, Source, dotted, read_source

__all__ = ["ConfigError", "ModelsConfig", "listed_names", "load_config"]


USAGE_STRATEGIES = frozenset({"usage-based-routing-v2"})
"""The routing strategies that count each deployment's `rpm`/`tpm` a minute (the others weigh by them)."""

_SECTIONS = frozenset({"model_list", "router_settings", "litellm_settings", "environment_variables", "hive_mcp", CREDENTIALS})
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
# Router settings the proxy's users also write under litellm_settings (litellm's Router reads the module-level
# value where its own argument is unset): router_settings wins where both set one.
ROUTER_KEYS_IN_LITELLM_SETTINGS = (
    "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
    "allowed_fails", "cooldown_time",
)
# Router arguments hive-mcp decides itself: one retry policy, in provider/retry.py.
_OWNED_ROUTER_SETTINGS = {
    "num_retries": "taken as hive-mcp's max_retries",
    "retry_after": "hive-mcp's retry policy sets the delays",
    "retry_policy": "hive-mcp's retry policy decides which errors are retried",
    "model_group_retry_policy": "hive-mcp's retry policy decides which errors are retried",
}


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
    unset: tuple[tuple[str, ...], ...] = ()
    """For each `model_list` entry, the `os.environ/` variables it names that are not set (empty: usable)."""
    credential_list: tuple[dict[str, Any], ...] = ()
    """The `credential_list` items (`llms.config_credentials`), for litellm's `credential_list`."""

    @property
    def groups(self) -> list[str]:
        """Model group names in the order they first appear."""
        return list(dict.fromkeys(d["model_name"] for d in self.model_list))

    def callable_names(self) -> list[str]:
        """What a client may pass as `model`: every group, then every alias (and, for a wildcard group, any
        name it matches: `llms.catalogue.pattern_matches`)."""
        return [*self.groups, *(a for a in self.aliases if a not in self.groups)]

    def usable(self, index: int) -> bool:
        """Whether `model_list[index]` has every variable it names (routing skips it otherwise)."""
        return not (self.unset and self.unset[index])

    def usable_entries(self) -> list[dict[str, Any]]:
        return [e for i, e in enumerate(self.model_list) if self.usable(i)]

    @property
    def router_shares_state(self) -> bool:
        """`router_settings` names a Redis (`redis_host`, `redis_url`, ...): the Router keeps its cooldowns and
        usage counts there, shared by every process using the config; else each process keeps its own."""
        return any(k.startswith("redis") for k in self.router_settings)

    @property
    def counts_usage(self) -> bool:
        """The routing strategy routes by each deployment's rpm/tpm counts (`USAGE_STRATEGIES`)."""
        return self.router_settings.get("routing_strategy") in USAGE_STRATEGIES

    def per_process_limits(self) -> dict[str, list[str]]:
        """The groups whose deployments set a limit the strategy counts (`rpm`, `tpm`) with no Redis to share the
        count, each with the keys it sets: every process holds its own, so N of them let N times through."""
        if self.router_shares_state or not self.counts_usage:
            return {}
        found: dict[str, list[str]] = {}
        for entry in self.usable_entries():
            params = {**(entry.get("model_info") or {}), **(entry.get("litellm_params") or {})}
            keys = found.setdefault(entry["model_name"], [])
            keys += [k for k in ("rpm", "tpm") if params.get(k) is not None and k not in keys]
        return {group: keys for group, keys in found.items() if keys}

    def patterns(self) -> list[str]:
        """The wildcard groups (`model_name: "openai/*"`), in the config's order."""
        return [g for g in self.groups if is_pattern(g)]

    def default_group(self) -> str | None:
        """The group calls go to when they name none: the first one with a usable deployment that is not a
        wildcard (a wildcard names no model), else the first that is not a wildcard; None for wildcards alone."""
        plain = [g for g in self.groups if not is_pattern(g)]
        usable = {e["model_name"] for e in self.usable_entries()}
        return next((g for g in plain if g in usable), plain[0] if plain else None)


# ---------------------------------------------------------------------------
# Loading: includes, then checks, then resolution
# ---------------------------------------------------------------------------


class _Loader:
    def __init__(self, file: Path, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.warnings: list[str] = []
        self.root = file
        # Where each merged value came from: top-level key -> source; model_list entries one by one.
        self.origin: dict[str, Source] = {}
        self.entry_origin: list[tuple[Source, int]] = []
        self.merged: dict[str, Any] = {}
        self._seen: set[Path] = set()
        self._include(file)

    def error(self, path: Path_, what: str) -> ConfigError:
        source = self._source_of(path)
        if source is None:
            return ConfigError(f"{self.root}: {dotted(path)}: {what}")
        local = path
        if path[:1] == ("model_list",) and len(path) > 1 and isinstance(path[1], int):
            source, index = self.entry_origin[path[1]]
            local = ("model_list", index, *path[2:])
        line = source.line(local)
        at = f" line {line}:" if line is not None else ""
        return ConfigError(f"{source.file}:{at} {dotted(path) or 'top level'}: {what}")

    def _source_of(self, path: Path_) -> Source | None:
        if path[:1] == ("model_list",) and len(path) > 1 and isinstance(path[1], int):
            return self.entry_origin[path[1]][0]
        return self.origin.get(str(path[0])) if path else None

    def _include(self, file: Path) -> None:
        file = file.resolve()
        if file in self._seen:
            return
        self._seen.add(file)
        source = read_source(file)
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

    def resolve(self, value: Any, path: Path_, unset: list[str] | None = None) -> Any:
        """`value` with its `os.environ/` references resolved. A variable that is not set is an error, or,
        given `unset`, noted there and resolved to None (as the proxy resolves it)."""
        if isinstance(value, dict):
            return {k: self.resolve(v, (*path, k), unset) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i), unset) for i, v in enumerate(value)]
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :].strip()
            if not name:
                raise self.error(path, f"{value!r} names no variable")
            if name not in self.environ:
                if unset is None:
                    raise self.error(path, f"{ENV_PREFIX}{name} is not set (in the environment or the .env file)")
                unset.append(name)
                return None
            return self.environ[name]
        return value


def load_config(file: str | Path, environ: Mapping[str, str]) -> ModelsConfig:
    """Read and check `file`; `environ` (the environment over the `.env` file) resolves `os.environ/`."""
    path = Path(file).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; --config (HIVE_MCP_CONFIG) names a config.yaml file")
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

    credentials = credential_list(merged.get(CREDENTIALS), loader.error, loader.resolve)
    model_list, unset = _model_list(loader, merged, credentials)
    groups = set(d["model_name"] for d in model_list)
    litellm_raw = loader.resolve(_mapping(loader, merged, "litellm_settings"), ("litellm_settings",))
    router_settings, num_retries, written_in = _router_settings(loader, merged, litellm_raw)
    aliases = _aliases(loader, router_settings, groups)
    check_fallback_settings(loader.error, router_settings, written_in, groups, aliases)
    litellm_settings, budget, more_retries = _litellm_settings(loader, litellm_raw)
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
        secrets=tuple(sorted(config_secrets({
            "model_list": model_list, "router_settings": router_settings, "environment_variables": environment,
            "litellm_settings": litellm_raw, "general_settings": merged.get("general_settings"),
        }) | credential_secrets(credentials))),
        warnings=tuple(loader.warnings),
        aliases=aliases,
        unset=unset,
        credential_list=credentials,
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


def _model_list(
    loader: _Loader, merged: dict[str, Any], credentials: tuple[dict[str, Any], ...]
) -> tuple[list[dict[str, Any]], tuple[tuple[str, ...], ...]]:
    raw = merged.get("model_list")
    if raw is None:
        raise ConfigError(f"{loader.root}: model_list: missing: the file must list at least one model")
    if not isinstance(raw, list) or not raw:
        raise loader.error(("model_list",), "must be a non-empty list of {model_name, litellm_params} entries")
    out = []
    unset: list[tuple[str, ...]] = []
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
        missing: list[str] = []
        resolved = loader.resolve(entry, here, missing)
        resolved["model_name"] = name.strip()
        model_info_numbers, params_numbers = numeric_parameters()
        for section, numbers in (("litellm_params", params_numbers), ("model_info", model_info_numbers)):
            if isinstance(resolved.get(section), dict):
                _numbers(loader, resolved[section], (*here, section), numbers)
        if isinstance(resolved.get("litellm_params"), dict):
            check_typed(resolved["litellm_params"], (*here, "litellm_params"), typed_parameters(), loader.error)
            check_credential_name(resolved["litellm_params"], (*here, "litellm_params"), credentials, loader.error)
        out.append(resolved)
        unset.append(tuple(dict.fromkeys(missing)))
    skipped = [f"{e['model_name']} ({e['litellm_params'].get('model')}: {', '.join(u)})" for e, u in zip(out, unset) if u]
    if len(skipped) == len(out):
        raise ConfigError(
            f"{loader.root}: model_list: no deployment is usable, each names a variable that is not set "
            f"(in the environment or the .env file): {'; '.join(skipped)}"
        )
    if skipped:
        loader.warnings.append(
            f"model_list: {len(skipped)} deployment(s) skipped until their variables are set (not set: "
            f"{'; '.join(skipped)})"
        )
    return out, tuple(unset)


def _amount(value: Any, whole: bool = False) -> bool:
    """Whether `value` is a config's number: finite (YAML's `.nan`, `.inf` are floats), at least 0, whole if asked."""
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    return math.isfinite(value) and value >= 0


_UNDECLARED_NUMBERS: dict[str, Number] = {"weight": "float"}
"""Numeric `litellm_params` keys litellm reads without declaring them: `weight` (simple-shuffle routing)."""


def _numbers(loader: _Loader, mapping: dict[str, Any], here: Path_, declared: Mapping[str, Number]) -> None:
    """The keys of a deployment's `model_info` or `litellm_params` that litellm declares numeric (read from its
    own models: `numeric_parameters`), each a finite number of at least 0, whole where litellm wants an int.

    Checked here because litellm would take the file and then fail every call ("1 validation error for
    ModelInfo", the key unnamed) or `list_models`. What litellm's models coerce is taken and made the number
    (a numeric string, as an `os.environ/` reference always gives, or a whole float for an int), so what
    hive-mcp reads of the config itself (prices, context windows) is a number too. None is unset, as litellm
    takes it."""
    for key, value in mapping.items():
        kind = declared.get(key) or _UNDECLARED_NUMBERS.get(key)
        if kind is None or value is None:
            continue
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        whole = kind == "int"
        if not _amount(number) or (whole and not float(number).is_integer()):
            what = "a whole number" if whole else "a number"
            raise loader.error((*here, key), f"must be {what} of at least 0, not {value!r}")
        if isinstance(value, str) or whole:
            mapping[key] = int(number) if whole else number


def _router_settings(
    loader: _Loader, merged: dict[str, Any], litellm_raw: dict[str, Any]
) -> tuple[dict[str, Any], int | None, dict[str, str]]:
    raw = loader.resolve(_mapping(loader, merged, "router_settings"), ("router_settings",))
    known = router_parameters()
    unknown = sorted(k for k in raw if k not in known and k not in _OWNED_ROUTER_SETTINGS)
    if unknown:
        loader.warnings.append(f"router_settings: ignored (litellm's Router takes no such argument): {', '.join(unknown)}")
    owned = {k: v for k, v in raw.items() if k in _OWNED_ROUTER_SETTINGS}
    for key in sorted(k for k in owned if k != "num_retries"):
        loader.warnings.append(f"router_settings.{key}: ignored: {_OWNED_ROUTER_SETTINGS[key]}")
    settings = {k: v for k, v in raw.items() if k in known and k not in _OWNED_ROUTER_SETTINGS and k != "model_list"}
    # Where each setting was written, for the errors: litellm_settings' own apply where router_settings has none.
    section = {k: "router_settings" for k in settings}
    shadowed = []
    for key in ROUTER_KEYS_IN_LITELLM_SETTINGS:
        if litellm_raw.get(key) is None:
            continue
        if settings.get(key) in (None, []):
            settings[key], section[key] = litellm_raw[key], "litellm_settings"
        else:
            shadowed.append(key)
    if shadowed:
        loader.warnings.append(
            f"litellm_settings: {', '.join(shadowed)}: router_settings sets them too, and wins (as in the LiteLLM proxy)"
        )

    strategy = settings.get("routing_strategy")
    if strategy is not None and strategy not in routing_strategies():
        raise loader.error(
            ("router_settings", "routing_strategy"),
            f"unknown routing strategy {strategy!r}; litellm knows: {', '.join(routing_strategies())}",
        )
    for key in ("allowed_fails", "cooldown_time", "timeout", "stream_timeout", "redis_port"):
        value = settings.get(key)
        if value is not None and not _amount(value):
            raise loader.error((section[key], key), f"must be a finite number of at least 0, not {value!r}")

    retries = owned.get("num_retries")
    if retries is not None and not _amount(retries, whole=True):
        raise loader.error(("router_settings", "num_retries"), f"must be a whole number of at least 0, not {retries!r}")
    # With where each setting was written (router_settings or litellm_settings), for the fallback checks' errors.
    return settings, retries, section


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
            # The proxy starts with such an alias too: calling it finds nothing. One warning, and it is not callable.
            loader.warnings.append(f"router_settings.model_group_alias.{alias}: {group!r} is not a model_name in "
                                   "model_list: the alias is left out")
            continue
        aliases[str(alias)] = group
    if len(aliases) < len(raw):
        settings["model_group_alias"] = {a: t for a, t in raw.items() if str(a) in aliases}
    return aliases


def _litellm_settings(loader: _Loader, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int | None]:
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
            if key == "request_timeout" and not (_amount(value) and value > 0):
                raise loader.error(here, f"must be a finite number more than 0, not {value!r}")
            settings[key] = value
        elif key in _BUDGET_SETTINGS:
            if key == "max_budget" and not _amount(value):
                raise loader.error(here, f"must be a finite number of USD, at least 0, not {value!r}")
            budget[key] = value
        elif key in ROUTER_KEYS_IN_LITELLM_SETTINGS:
            continue  # the Router's, where router_settings has none (_router_settings)
        elif key == "num_retries":
            if not _amount(value, whole=True):
                raise loader.error(here, f"must be a whole number of at least 0, not {value!r}")
            retries = value
        else:
            ignored.append(str(key))
    if ignored:
        loader.warnings.append(f"litellm_settings: not applied by hive-mcp: {', '.join(sorted(ignored))}")
    return settings, budget, retries


def hidden_names(config: ModelsConfig) -> list[str]:
    """The aliases callable but never shown (`{model, hidden: true}`: litellm leaves them out of its model list)."""
    raw = config.router_settings.get("model_group_alias") or {}
    return [a for a, t in raw.items() if isinstance(t, dict) and t.get("hidden") and a in config.aliases]


def listed_names(config: ModelsConfig) -> list[str]:
    """The callable names an agent is shown: groups, then aliases, hidden aliases left out."""
    hidden = set(hidden_names(config))
    return [n for n in config.callable_names() if n not in hidden]
