"""The model catalogue: what a client may call, as the MCP layer shows it. Free of MCP and litellm.

The provider side fills it (from the config, litellm's model information and the
Router's health); the MCP layer reads it for `list_models`, `hive://models` and
the `model` field's schema. Nothing here ever holds a key, a password or a
credentialed URL: a deployment is its provider and model name only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field, PrivateAttr


class DeploymentInfo(BaseModel):
    """One deployment of a group: where calls go, and whether it takes them now."""

    provider: str
    model: str
    healthy: bool = True
    cooldown_until: datetime | None = None
    credentials: bool = True  # False: a variable its config entry names is not set, so it takes no calls
    _missing: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def without_credentials(cls, provider: str, model: str, missing: Sequence[str]) -> DeploymentInfo:
        """A deployment whose config entry names the variables `missing`, which are not set."""
        info = cls(provider=provider, model=model, healthy=False, credentials=False)
        info._missing = tuple(missing)
        return info

    @property
    def missing_variables(self) -> list[str]:
        """The unset variables' names (an unset variable has no value): for the dashboard. `list_models`
        says `credentials: false`, and its definition, which every client pays for, stays as it is."""
        return list(self._missing)


NAMES_SHOWN = 20
"""How many callable names an error lists before it counts the rest."""


def some_names(names: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    """The first `shown` of `names`, comma-separated, then " and N more" for the rest: for an error that lists them."""
    listed = ", ".join(names[:shown])
    return f"{listed} and {len(names) - shown} more" if len(names) > shown else listed


WILDCARD = "*"


def is_pattern(name: str) -> bool:
    """Whether a config's `model_name` is a wildcard route (`openai/*`, `*`): it names models, it is not one."""
    return WILDCARD in name


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether the model `name` is one a wildcard route takes: each `*` stands for any text, as litellm's
    pattern router reads it. A name that is itself a pattern is not a model."""
    if is_pattern(name):
        return False
    return re.fullmatch(re.escape(pattern).replace(re.escape(WILDCARD), ".*"), name) is not None


def split_model(model: str) -> tuple[str, str]:
    """A litellm model string's provider and model: "openai/gpt-4o-mini" names its provider; a bare
    "gpt-4o-mini" leaves it to litellm, unnamed here ("")."""
    provider, _, name = model.partition("/")
    return (provider, name) if name else ("", model)


class ModelGroup(BaseModel):
    """One callable model group (a config's `model_name`), as an agent chooses among them."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    deployments: list[DeploymentInfo] = Field(default_factory=list)
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    unpriced: bool = False
    """No price is known (none in the config; litellm's map has none, or zeros, for a model not run locally):
    calls are refused under a budget unless it allows unpriced ones, and recorded with no cost."""
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    supports_reasoning: bool | None = None
    supports_json_schema: bool | None = None
    credentials_present: bool = True
    spent_today_usd: float | None = None
    """USD spent on this group since midnight UTC (what the caller may see of it); None without a ledger."""


class Catalogue(Protocol):
    """What the MCP layer asks of the models side."""

    any_model: bool
    """True without a config: any litellm model string is accepted (within the allow-list)."""

    def groups(self) -> list[ModelGroup]:
        """Every group, in the config's order (without a config: the default model's entry)."""
        ...

    def callable_names(self) -> list[str]:
        """Every name `model` may take that is shown: groups, then aliases (hidden aliases left out)."""
        ...

    def hidden_names(self) -> list[str]:
        """The names `model` may take that are shown nowhere (a config's hidden aliases)."""
        ...

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) when the catalogue changes: a deployment enters or leaves cooldown."""
        ...

    def remove_listener(self, callback: Callable[[], None]) -> None: ...
