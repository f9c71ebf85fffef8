"""Change notifications about a dump reach only the sessions whose caller may see it, through a subprocess server.

Alice's call fails (her dump), then bob's (his). Each session subscribes to the dump index and to its own
conversation; after his failing call bob continues his conversation, whose `resources/updated` is his barrier:
everything sent to him before it has arrived. By then he must have heard of his own dump only, never of
alice's (which was written, and heard by her, before his). Legacy sessions over streamable HTTP and SSE, and
2026-07-28 `subscriptions/listen` streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import ResourceUpdatedNotification

from mcp import Client
from tests.servers import HttpServer, authed_target, server_env, text_of
from tests.upstream import Reply, Upstream

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdef"
INDEX = "hive://failed-requests"
WAIT_S = 60


@pytest.fixture(params=[("http", "legacy"), ("http", "auto"), ("sse", "legacy")], ids=["legacy", "listen", "sse"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[HttpServer, Upstream, str]]:
    transport, mode = request.param
    with Upstream() as upstream:
        env = server_env(upstream, tmp_path / "dumps", api_key=True) | {
            "HIVE_HOME": str(tmp_path / "home"),
            "HIVE_MCP_AUTH_TOKEN": f"alice:{ALICE},bob:{BOB}",
        }
        server = HttpServer(transport, env, tmp_path, "notify")
        try:
            server.wait_ready()
            yield server, upstream, mode
        finally:
            assert server.terminate() == 0, server.stderr()


class Heard:
    """The URIs of the `resources/updated` one session heard, in order, and a wait for one of them."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._new = anyio.Event()

    def add(self, uri: str) -> None:
        self.uris.append(uri)
        self._new.set()
        self._new = anyio.Event()

    async def message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.add(str(message.params.uri))

    async def until(self, uri: str, count: int = 1) -> None:
        with anyio.fail_after(WAIT_S):
            while self.uris.count(uri) < count:
                await self._new.wait()


async def fail(client: Client, upstream: Upstream) -> None:
    upstream.script(Reply.error(400, "scripted refusal"))
    result = await client.call_tool("complete", {"prompt": "this one fails", "max_retries": 0})
    assert result.is_error, text_of(result)


async def start(client: Client) -> str:
    """A conversation of the client's own: its URI, the client's barrier."""
    result = await client.call_tool("complete", {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    return f"hive://conversations/{result.structured_content['conversation_id']}"


async def watch(client: Client, heard: Heard, uris: list[str], mode: str, task_status: Any) -> None:
    """Hear `resources/updated` of `uris`: a legacy session subscribes; a 2026-07-28 one listens."""
    if mode == "legacy":
        for uri in uris:
            await client.subscribe_resource(uri)
        task_status.started()
        return
    async with client.listen(resource_subscriptions=uris) as sub:
        task_status.started()
        async for event in sub:
            if uri := getattr(event, "uri", None):
                heard.add(uri)


def test_a_dump_is_notified_only_to_its_callers_sessions(served: tuple[HttpServer, Upstream, str]) -> None:
    server, upstream, mode = served
    heard = {"alice": Heard(), "bob": Heard()}
    barrier: dict[str, str] = {}

    def handler(who: str) -> Any:
        return heard[who].message if mode == "legacy" else None  # a listen stream's events come from `listen`

    async def go() -> None:
        async with (
            Client(authed_target(server, ALICE)(), mode=mode, message_handler=handler("alice")) as alice,
            Client(authed_target(server, BOB)(), mode=mode, message_handler=handler("bob")) as bob,
            anyio.create_task_group() as tg,
        ):
            barrier.update(alice=await start(alice), bob=await start(bob))
            await tg.start(watch, alice, heard["alice"], [INDEX, barrier["alice"]], mode)
            await tg.start(watch, bob, heard["bob"], [INDEX, barrier["bob"]], mode)
            await fail(alice, upstream)
            await heard["alice"].until(INDEX)
            await fail(bob, upstream)
            seen = heard["bob"].uris.count(barrier["bob"])
            going_on = await bob.call_tool("complete", {"prompt": "on", "conversation_id": barrier["bob"].rsplit("/", 1)[1]})
            assert not going_on.is_error, text_of(going_on)
            await heard["bob"].until(barrier["bob"], seen + 1)
            tg.cancel_scope.cancel()

    anyio.run(go)
    bob = heard["bob"].uris
    before_barrier = bob[: len(bob) - bob[::-1].index(barrier["bob"])]
    assert before_barrier.count(INDEX) == 1, bob  # his own dump, and never alice's (written before his)
    assert heard["alice"].uris.count(INDEX) >= 1, heard["alice"].uris
