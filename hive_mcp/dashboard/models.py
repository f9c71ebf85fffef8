"""The dashboard's Models section: each catalogue group, its deployments' health, prices, and today's failures.

The groups come from the catalogue's own listing (what `list_models` shows), so the
dashboard and the tool agree on names, aliases, health and prices. Failures are
counted from the dump store's own listing since midnight UTC (see `failure_names`
for what a dump is matched on). Calls in total are not recorded anywhere yet (the
spend ledger will record them), so `calls_today` is None, never a guess.

Imports no MCP and no litellm: the MCP layer and the HTTP side both build it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Literal, Protocol

from pydantic import BaseModel

from ..llms.catalogue import DeploymentInfo, ModelGroup
from .data import Dumps, scan

Health = Literal["healthy", "cooling_down", "unhealthy", "no_credentials"]


class Listing(Protocol):
    """What the section reads of the catalogue's listing (`mcp.model_list.ModelList` has these)."""

    default_model: str
    any_model: bool
    note: str
    groups: list[ModelGroup]


class DeploymentRow(BaseModel):
    provider: str
    model: str
    name: str
    """`provider/model` (the model alone when no provider is named): the litellm model string."""
    health: Health
    """`no_credentials` when a variable its config entry names is not set (it takes no calls until it is);
    else `cooling_down` when not healthy and a cooldown end is known, `unhealthy` when none is."""
    cooldown_until: datetime | None
    missing_variables: list[str]
    """With `no_credentials`: the variables not set (names only; an unset variable has no value)."""


class GroupRow(BaseModel):
    name: str
    aliases: list[str]
    deployments: list[DeploymentRow]
    input_cost_per_mtok: float | None
    output_cost_per_mtok: float | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    credentials_present: bool
    calls_today: int | None = None
    """Not recorded yet (the spend ledger will count calls): None, not zero."""
    failures_today: int
    """Dumps since midnight UTC whose `model` is one of `matched` (see `failure_names`)."""
    failures_by_category: dict[str, int]
    matched: list[str]
    """The dump `model` values counted for this group."""


class ModelsSection(BaseModel):
    """The Models view: one row per catalogue group, failures counted since `day_start` (midnight UTC)."""

    default_model: str
    any_model: bool
    note: str
    day_start: datetime
    groups: list[GroupRow]
    other_failures_today: int
    """Dumps since midnight UTC that match no group (e.g. other litellm model strings, when any is callable)."""
    calls_recorded: bool = False
    """Whether `calls_today` is counted anywhere; False until the spend ledger exists."""
    truncated: bool
    """True when there were too many dumps today to count them all."""


def deployment_name(d: DeploymentInfo) -> str:
    return f"{d.provider}/{d.model}" if d.provider else d.model


def failure_names(group: ModelGroup) -> list[str]:
    """The dump `model` values that count as this group's failures.

    A dump's `model` is the litellm model string the call was sent with: a
    group's name (or an alias) when the call named the group, or a deployment's
    `provider/model` when a deployment was called directly (as without a config,
    where the one group is named after its deployment). All of them count, each
    once. A string two groups share counts for both.
    """
    names = [group.name, *group.aliases, *(deployment_name(d) for d in group.deployments)]
    return list(dict.fromkeys(names))


def _health(d: DeploymentInfo) -> Health:
    if not d.credentials:
        return "no_credentials"
    if d.healthy:
        return "healthy"
    return "cooling_down" if d.cooldown_until is not None else "unhealthy"


def day_start(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def models_section(store: Dumps, listing: Listing, *, now: datetime | None = None) -> ModelsSection:
    """The section for one listing, counting the store's dumps since midnight UTC of `now`."""
    start = day_start(now or datetime.now(UTC))
    today, truncated = scan(store, start, None, None)
    by_model: dict[str, Counter[str]] = {}
    for s in today:
        by_model.setdefault(s.model, Counter())[s.error_type] += 1
    claimed: set[str] = set()
    rows: list[GroupRow] = []
    for g in listing.groups:
        names = failure_names(g)
        claimed.update(names)
        categories: Counter[str] = Counter()
        for n in names:
            categories.update(by_model.get(n, Counter()))
        rows.append(
            GroupRow(
                name=g.name,
                aliases=list(g.aliases),
                deployments=[
                    DeploymentRow(
                        provider=d.provider,
                        model=d.model,
                        name=deployment_name(d),
                        health=_health(d),
                        cooldown_until=d.cooldown_until,
                        missing_variables=d.missing_variables,
                    )
                    for d in g.deployments
                ],
                input_cost_per_mtok=g.input_cost_per_mtok,
                output_cost_per_mtok=g.output_cost_per_mtok,
                max_input_tokens=g.max_input_tokens,
                max_output_tokens=g.max_output_tokens,
                credentials_present=g.credentials_present,
                failures_today=sum(categories.values()),
                failures_by_category=dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
                matched=names,
            )
        )
    other = sum(sum(c.values()) for m, c in by_model.items() if m not in claimed)
    return ModelsSection(
        default_model=listing.default_model,
        any_model=listing.any_model,
        note=listing.note,
        day_start=start,
        groups=rows,
        other_failures_today=other,
        truncated=truncated,
    )


def models_source(store: Dumps, listing: Callable[[], Listing]) -> Callable[[], ModelsSection]:
    """A `Sources.models` callable: the section for the listing as it is when asked."""
    return lambda: models_section(store, listing())
