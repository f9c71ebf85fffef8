"""The model catalogue as clients see it: `list_models`, `hive://models`, the `model` field and its checks.

Everything shown comes from the `Catalogue` interface's own shapes (`ModelGroup`,
`DeploymentInfo`), which hold no key, password or credentialed URL, so nothing
secret can be shown. A catalogue that is not `any_model` (a config's) makes its
callable names the only values `model` takes: they are named in the field's
schema (the call's admission refuses any other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from mcp_types import Completion
from pydantic import BaseModel, ConfigDict

from ..limits import Limits
from ..llms.catalogue import Catalogue, ModelGroup, is_pattern
from ..spend import Spend
from .constants import MODEL_URI_PREFIX, MODELS_URI, model_uri

ENUM_MAX = 30
"""At most this many callable names become the `model` field's `enum`; more are described, not enumerated."""

DESCRIBED_NAMES = 10
"""How many names the `model` field's description shows when there are too many for an enum."""

COMPLETION_MAX = 100
"""The most values one `completion/complete` answer may carry (the protocol's cap)."""


class ListModelsArgs(BaseModel):
    """`list_models` takes no arguments."""

    model_config = ConfigDict(extra="forbid")


class ModelList(BaseModel):
    """What `model` may name: the groups (with their aliases), and the default used when `model` is omitted."""

    default_model: str
    any_model: bool
    note: str
    groups: list[ModelGroup]


@dataclass
class ModelsView:
    """One server's catalogue, as its tools and resources show it."""

    catalogue: Catalogue
    default_model: str
    limits: Limits

    def listing(self) -> ModelList:
        return ModelList(
            default_model=self.default_model,
            any_model=self.catalogue.any_model,
            note=self._note(),
            groups=self.catalogue.groups(),
        )

    def _note(self) -> str:
        default = f"without one, calls go to the default, {self.default_model}"
        if not self.catalogue.any_model:
            patterns = [n for n in self.catalogue.callable_names() if is_pattern(n)]
            wildcards = f", or any model a wildcard group ({', '.join(patterns)}) matches" if patterns else ""
            return f"`model` takes a group's name or one of its aliases{wildcards}; {default}."
        patterns = self.limits.allowed_models
        if patterns:
            return f"`model` takes any litellm model string matching {', '.join(patterns)}; {default}."
        return f"`model` takes any litellm model string (e.g. 'anthropic/claude-sonnet-4-5'); {default}."

    def uris(self) -> list[str]:
        """Every resource a catalogue change may update: `hive://models` and each group's, by name and alias.
        Asked on the event loop: from the names alone, never the groups (whose cooldowns the Router may read
        from Redis)."""
        return [MODELS_URI, *(model_uri(name) for name in self.catalogue.callable_names())]

    def group(self, uri: str) -> ModelGroup | None:
        """The group `hive://models/{name}` names (by its name or an alias; the name may be percent-encoded)."""
        name = unquote(uri[len(MODEL_URI_PREFIX) :])
        for g in self.catalogue.groups():
            if name == g.name or name in g.aliases:
                return g
        return None

    def field_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The `model` field's schema for this catalogue: its callable names, when only they are callable
        (with a wildcard route, any name it matches is callable too: described, not enumerated)."""
        if self.catalogue.any_model:
            return schema
        names = self.catalogue.callable_names()
        patterns = [n for n in names if is_pattern(n)]
        if patterns:
            plain = [n for n in names if not is_pattern(n)][:DESCRIBED_NAMES]
            named = f"{', '.join(plain)}, or " if plain else ""
            return {**schema, "description": f"{named}any model matching {', '.join(patterns[:DESCRIBED_NAMES])} "
                                             "(list_models has all)"}
        if len(names) <= ENUM_MAX and not self.catalogue.hidden_names():  # an enum would refuse a hidden alias
            return {"enum": names}
        shown = ", ".join(names[:DESCRIBED_NAMES])
        return {**schema, "description": f"One of {len(names)} names: {shown}, ... (list_models has all)"}

    def complete(self, typed: str) -> Completion:
        """The callable names that start with `typed`, for `completion/complete` on `hive://models/{name}`."""
        matches = [n for n in self.catalogue.callable_names() if n.startswith(typed)]
        values = matches[:COMPLETION_MAX]
        return Completion(values=values, total=len(matches), has_more=len(matches) > len(values))


def with_spend_today(listing: ModelList, spend: Spend, who: str | None) -> ModelList:
    """`listing` with each group's spend today (`who`'s only, unless None). Blocking: in a worker thread."""
    try:
        spent = spend.spent_today(who)
    except Exception:  # noqa: BLE001 - the listing stands without it
        return listing
    groups = [g.model_copy(update={"spent_today_usd": spent.get(g.name, 0.0)}) for g in listing.groups]
    return listing.model_copy(update={"groups": groups})
