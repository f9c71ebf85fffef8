"""What the provider tests through litellm's real HTTP path share: a one-message conversation, a stream's
events collected, and the one dump a call left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing this module loads no part of the package
    from hive_mcp.dumps import DumpStore
    from hive_mcp.provider import LiteLLMProvider

USER = [{"role": "user", "content": "hi"}]


async def collect(provider: LiteLLMProvider, messages: list[dict[str, Any]] = USER, **kw: Any) -> list[Any]:
    return [event async for event in provider.stream(messages, **kw)]


def only_dump(store: DumpStore):
    page = store.list()
    assert len(page.items) == 1, page.items
    return store.read(page.items[0].id)
