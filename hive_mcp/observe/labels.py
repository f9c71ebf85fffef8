"""Label values a metric may carry, kept bounded: a caller or a model group only where the operator named it,
else `other`; a category only in its own small alphabet. No id is ever a label."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..tokens import LOCAL_CALLER, named_callers

__all__ = ["NONE", "OTHER", "caller", "category", "deployment", "group", "name_models"]

OTHER = "other"
"""What an unnamed caller, group or deployment is counted as."""
NONE = "none"
"""A label with nothing to say (no error, no deployment yet)."""

_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_groups: frozenset[str] = frozenset()
_deployments: frozenset[str] = frozenset()


def name_models(groups: Iterable[str], deployments: Iterable[str] = ()) -> None:
    """The groups and deployment labels the operator configured (a models config's, or the default model):
    only these are labels; a name a caller made up is `other`."""
    global _groups, _deployments
    _groups, _deployments = frozenset(groups), frozenset(deployments)


def group(name: str | None) -> str:
    return NONE if not name else name if name in _groups else OTHER


def deployment(label: str | None) -> str:
    return NONE if not label else label if label in _deployments else OTHER


def caller(name: str | None) -> str:
    """`local`, or a caller whose token the operator named (`name:token`); an unnamed token's caller is `other`."""
    if name == LOCAL_CALLER:
        return name
    return name if name and name in named_callers() else OTHER


def category(value: str | None) -> str:
    """An outcome, a tool or an error category: a short snake_case word, else `other`."""
    if not value:
        return NONE
    return value if _CATEGORY.fullmatch(value) else OTHER
