"""Which fallback targets answer a failed call: litellm's Router's lookup, over a config's fallback lists.

litellm (`router_utils/fallback_event_handlers`) looks a failure up by the names
the call goes by: here the name called (an alias, when one was called) and then
its group. In each list a name's own entry wins over the generic `"*"` entry
wherever it is listed, and of several `"*"` entries the last counts. Its
`default_fallbacks` are one more `"*"` entry at the end of `fallbacks` (so they
win over a `"*"` written there). A context-window or content-policy error reads
its own list first, then `fallbacks`, the two lists' own entries before either's
generic one: with `context_window_fallbacks: [{"*": [c]}]` and
`fallbacks: [{a: [b]}]`, a context-window failure of `a` goes to `b` (litellm
1.110.2, checked through its Router). What a target names (a group, an alias, a
name a wildcard group takes) is the router's to resolve (`ModelRouter.hop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..llms.config_fallbacks import GENERIC

__all__ = ["CATEGORY_LISTS", "FallbackTable"]

# Which fallback list answers which error category; any other failure uses `fallbacks`.
CATEGORY_LISTS = {"context_window": "context_window_fallbacks", "content_policy": "content_policy_fallbacks"}


def _entries(value: Any) -> dict[str, list[str]]:
    """A checked fallback list as key -> targets; a later entry for the same key does not replace the first
    (litellm stops at the first match), except the generic one, whose last entry counts."""
    out: dict[str, list[str]] = {}
    for item in value or []:
        for key, targets in item.items():
            listed = [targets] if isinstance(targets, str) else list(targets)
            if key == GENERIC or key not in out:
                out[key] = listed
    return out


class FallbackTable:
    """A config's `fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks` and `default_fallbacks`."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.lists = {key: _entries(settings.get(key)) for key in ("fallbacks", *CATEGORY_LISTS.values())}
        default = settings.get("default_fallbacks")
        if default:
            self.lists["fallbacks"][GENERIC] = list(default)

    def targets(self, names: Sequence[str], error_type: str) -> list[str]:
        """The targets, as written, for a call going by `names` (the name called, then its group: the same name
        twice when the group was called) that failed with `error_type`; empty when no list has an entry for it."""
        order = [self.lists["fallbacks"]]
        category = CATEGORY_LISTS.get(error_type)
        if category is not None:
            order.insert(0, self.lists[category])
        for table in order:
            for name in names:
                if name in table and name != GENERIC:
                    return table[name]
        for table in order:
            if GENERIC in table:
                return table[GENERIC]
        return []

    def every_target(self, names: Sequence[str]) -> list[str]:
        """The targets of any error category: every name a call by `names` may fall back to."""
        found = (t for error_type in ("transient", *CATEGORY_LISTS) for t in self.targets(names, error_type))
        return list(dict.fromkeys(found))
