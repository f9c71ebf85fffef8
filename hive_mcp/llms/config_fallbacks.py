"""A config's fallback lists, checked against the names litellm's Router resolves in them.

litellm looks a failed call's fallbacks up by the name it was called by
(`router_utils/fallback_event_handlers.get_fallback_model_group`): a key is a
model group, a `model_group_alias` name (it applies to calls by the alias), a
name a wildcard group takes, or `"*"`, the generic entry for every group without
its own. A target is called as a model is: a group, an alias (its group answers)
or a name a wildcard group takes (sent as that name). Anything else names
nothing the Router could call: refused at start-up in one line naming the file,
the line and the key. Run-time lookup is `provider.fallbacks`.

A leaf of `llms`: the loader passes its `error` in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from .catalogue import is_pattern, pattern_matches
from .yaml_source import ConfigError, Path_

__all__ = ["GENERIC", "check_fallback_settings"]

GENERIC = "*"
"""The key of litellm's generic fallback entry: the targets of every group that has no entry of its own."""

Error = Callable[[Path_, str], ConfigError]


def _callable(name: str, groups: Collection[str], aliases: Mapping[str, str]) -> bool:
    """Whether litellm's Router can call `name`: a group, an alias, or a name a wildcard group takes."""
    return name in groups or name in aliases or any(is_pattern(g) and pattern_matches(g, name) for g in groups)


def _nothing(name: str) -> str:
    return f"{name!r} is not a model_name, alias or name a wildcard group takes in this config"


def check_fallback_settings(error: Error, settings: Mapping[str, Any], section: Mapping[str, str],
                            groups: Collection[str], aliases: Mapping[str, str]) -> None:
    """`settings`' fallback lists (`section`: where each was written, router_settings or litellm_settings)."""
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        _check_list(error, settings.get(key), (section.get(key, "router_settings"), key), groups, aliases)
    default = settings.get("default_fallbacks")
    if default is not None:
        here: Path_ = (section.get("default_fallbacks", "router_settings"), "default_fallbacks")
        if not isinstance(default, list) or not all(isinstance(g, str) for g in default):
            raise error(here, "must be a list of model group names")
        for j, target in enumerate(default):
            if not _callable(target, groups, aliases):
                raise error((*here, j), _nothing(target))


def _check_list(error: Error, value: Any, here: Path_, groups: Collection[str], aliases: Mapping[str, str]) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise error(here, "must be a list like [{group: [fallback, ...]}]")
    for i, item in enumerate(value):
        if not isinstance(item, dict) or len(item) != 1:
            raise error((*here, i), "each entry must be one {group: [fallback, ...]} mapping")
        (key, targets), = item.items()
        if not isinstance(key, str) or (key != GENERIC and not _callable(key, groups, aliases)):
            raise error((*here, i, key), _nothing(key))
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise error((*here, i, key), "must be a list of model group names")
        for j, target in enumerate(targets):
            if not _callable(target, groups, aliases):
                raise error((*here, i, key, j), _nothing(target))
