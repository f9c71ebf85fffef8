"""The string and list keys of a deployment's `litellm_params`, checked as litellm's own model would check them.

litellm validates a deployment's `litellm_params` with its pydantic `LiteLLM_Params`
on every call, not when the Router is built: a value of the wrong type there is
taken at start-up and then fails every call to the group ("Input should be a valid
string", naming neither the file nor the line). YAML makes such values easily:
`api_version: 2024-10-21` is a date, `api_version: 2024` a number, `tags: free` a
string. Which keys are strings and which lists is litellm's to say
(`router_names.typed_parameters`, read from its source); each is checked here
and refused in one line, a date or a number with the hint to quote it.

A leaf of `llms`: the loader passes its `error` (file, line and key) in.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from .yaml_source import ConfigError, Path_

__all__ = ["check_typed"]

Error = Callable[[Path_, str], ConfigError]


def _what(value: Any) -> str:
    """How a value that is not a string reads in an error: a date or a number with the hint that quoting it
    keeps it the string it was meant to be."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"a date ({value.isoformat()}): quote it, as YAML reads it as a date"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"a number ({value}): quote it, as YAML reads it as a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def check_typed(mapping: Mapping[str, Any], here: Path_, declared: Mapping[str, str], error: Error) -> None:
    """Each key of `mapping` (a deployment's resolved `litellm_params`) that litellm declares a string ("str")
    or a list ("list", "list[str]") holds one, the items of a `list[str]` strings; None is unset, as litellm
    takes it. Values are left as they are: a right one is what litellm receives."""
    for key, value in mapping.items():
        kind = declared.get(key)
        if kind is None or value is None:
            continue
        if kind == "str" and not isinstance(value, str):
            raise error((*here, key), f"must be a string, not {_what(value)}")
        if kind.startswith("list"):
            if not isinstance(value, list):
                raise error((*here, key), f"must be a list, not {_what(value)}")
            for i, item in enumerate(value):
                if kind == "list[str]" and not isinstance(item, str):
                    raise error((*here, key, i), f"must be a string, not {_what(item)}")
