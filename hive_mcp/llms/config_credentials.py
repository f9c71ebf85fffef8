"""A config's `credential_list`: credentials deployments name by `litellm_params.litellm_credential_name`.

The proxy reads this top-level section into `litellm.credential_list` (its
`load_credential_list`: each item validated as litellm's `CredentialItem`), and
litellm puts the named credential's values under a call's own keyword arguments
(a deployment's own `api_key` or `api_base` wins). hive-mcp hands the same list to
litellm when it builds the Router (`provider.routing`), so a deployment calls
with its credential as under the proxy.

Checked at start-up, each mistake one line naming the file, the line and the key:
an item is a mapping with a non-empty `credential_name` (unique: litellm would
take the first of two silently), a `credential_values` mapping and a
`credential_info` mapping (`CredentialItem` requires both); `os.environ/` in a
value is resolved as elsewhere outside `model_list` (unset is an error); and a
deployment naming a credential the list does not hold is refused, where litellm
would send its calls without one. Every value of a credential is a secret.

A leaf of `llms`: the loader passes in its `error` and `resolve`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .yaml_source import ConfigError, Path_

__all__ = ["SECTION", "check_credential_name", "credential_list", "credential_secrets", "with_credential"]

SECTION = "credential_list"
NAME_KEY = "litellm_credential_name"

Error = Callable[[Path_, str], ConfigError]
Resolve = Callable[[Any, Path_], Any]


def credential_list(raw: Any, error: Error, resolve: Resolve) -> tuple[dict[str, Any], ...]:
    """The checked items of `raw` (the section as written), `os.environ/` resolved, as the proxy hands them to
    `CredentialItem`: {credential_name, credential_values, credential_info}."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise error((SECTION,), "must be a list of {credential_name, credential_values, credential_info} entries")
    items: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        here: Path_ = (SECTION, i)
        if not isinstance(item, dict):
            raise error(here, "must be a mapping with credential_name, credential_values and credential_info")
        name = item.get("credential_name")
        if not isinstance(name, str) or not name.strip():
            raise error((*here, "credential_name"), "must be a non-empty string (what litellm_credential_name names)")
        if any(other["credential_name"] == name for other in items):
            raise error((*here, "credential_name"), f"{name!r} is listed twice (litellm would use the first alone)")
        for key in ("credential_values", "credential_info"):
            if item.get(key) is None:
                raise error((*here, key), "missing: a mapping (litellm's CredentialItem requires it; {} is one)")
            if not isinstance(item[key], dict):
                raise error((*here, key), "must be a mapping")
        items.append({
            "credential_name": name,
            "credential_values": resolve(item["credential_values"], (*here, "credential_values")),
            "credential_info": resolve(item["credential_info"], (*here, "credential_info")),
        })
    return tuple(items)


def check_credential_name(params: Mapping[str, Any], here: Path_, items: tuple[dict[str, Any], ...],
                          error: Error) -> None:
    """A deployment's `litellm_credential_name` (None: unset) names an item of `credential_list`."""
    name = params.get(NAME_KEY)
    if name is None:
        return
    names = [item["credential_name"] for item in items]
    if name not in names:
        listed = f"it lists: {', '.join(names)}" if names else "the config has none"
        raise error((*here, NAME_KEY), f"{name!r} is not a credential_name in credential_list ({listed})")


def credential_secrets(items: tuple[dict[str, Any], ...]) -> set[str]:
    """Every string a credential holds, whatever its key: a credential is a secret as a whole."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value:
            found.add(value)

    for item in items:
        walk(item["credential_values"])
    return found


def with_credential(params: Mapping[str, Any], items: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """A deployment's `litellm_params` as litellm calls with them: the values of the credential it names under
    its own (litellm's `_named_credential_values` leaves a key the call has alone)."""
    name = params.get(NAME_KEY)
    values = next((item["credential_values"] for item in items if item["credential_name"] == name), {})
    return {**values, **params}
