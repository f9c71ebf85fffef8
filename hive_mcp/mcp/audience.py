"""Who may hear of a change: events about one caller's things carry their owners, and a listener hears an event
only when its caller may see what changed (the owner, admins and the stdio user: `tokens.owner_scope`).

An event without owners (the model catalogue) is everyone's. A leaf module: the notifier and the Redis bus
both tag and read events through it, so the rule holds in this process and across processes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

__all__ = ["Audience", "OwnedListChanged", "OwnedUpdated", "hears", "join", "owned", "owners_of"]

Audience = frozenset[str] | None
"""The callers a change concerns; None: everyone."""


@dataclass(frozen=True)
class OwnedListChanged(ResourcesListChanged):
    """The resource list of `owners` changed (nobody else's)."""

    owners: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OwnedUpdated(ResourceUpdated):
    """`uri` changed, for `owners` only."""

    owners: frozenset[str] = frozenset()


def join(a: Audience, b: Audience) -> Audience:
    return None if a is None or b is None else a | b


def owners_of(event: ServerEvent) -> Audience:
    return event.owners if isinstance(event, OwnedListChanged | OwnedUpdated) else None


def owned(event: ServerEvent, owners: Audience) -> ServerEvent:
    """`event`, heard only by `owners` (None: by everyone)."""
    if owners is None:
        return event
    if isinstance(event, ResourcesListChanged):
        return OwnedListChanged(owners=owners)
    if isinstance(event, ResourceUpdated):
        return OwnedUpdated(uri=event.uri, owners=owners)
    return event


def hears(scope: str | None, audience: Audience) -> bool:
    """Whether a listener whose `owner_scope` is `scope` hears of a change concerning `audience`."""
    return scope is None or audience is None or scope in audience
