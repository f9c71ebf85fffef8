"""Change notifications about a dump reach only the sessions whose caller may see it, through a subprocess server.

Each caller has a listening session, subscribed to the dump index and to its own conversation, and another
session that calls. Alice's call fails (her dump), then bob's (his); then bob continues his conversation, whose
`resources/updated` is his barrier: everything sent to him before it has arrived. By then he must have heard
of his own dump only, never of alice's (which was written, and heard by her, before his).

A conversation's changes are told at most once a second, so the notification of bob's first call can still be
on its way when his listening begins: the first one he hears after his failure may be that one. He continues
twice, waiting each time for one more: of the notifications counted, at most one predates his failure, so the
last is a continuation's, sent after his dump's.

Legacy sessions over streamable HTTP and SSE, 2026-07-28 `subscriptions/listen` streams, and listen streams on
one instance hearing of the calls made on another through a real valkey-server (the Redis bus).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import ResourceUpdatedNotification

from mcp import Client
from tests.servers import HttpServer, authed_target, server_env
from tests.clients import text_of
from harness.upstream import Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdef"
ROOT = "tok-root-0123456789abcdef"  # an admin: hears of every caller's dumps
INDEX = "hive://failed-requests"
CONVERSATIONS = "hive://conversations"
USAGE = "hive://usage"
WAIT_S = 60


Served = tuple[HttpServer, HttpServer, Upstream, str]
"""Where the listening sessions are, where the calls go, the upstream, and the client's protocol mode."""


@pytest.fixture(
    params=[("http", "legacy", 1), ("http", "auto", 1), ("sse", "legacy", 1), ("http", "auto", 2)],
    ids=["legacy", "listen", "sse", "instances"],
)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    transport, mode, count = request.param
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(Upstream())
        shared = {}
        if count > 1:  # stateless instances sharing one valkey-server: events cross on its pub/sub
            shared = {"HIVE_MCP_STATE_URL": stack.enter_context(ValkeyProcess(valkey_binary())).url}
        servers = []
        for i in range(count):
            env = server_env(upstream, tmp_path / f"dumps{i}", api_key=True) | shared | {
                "HIVE_HOME": str(tmp_path / f"home{i}"),
                "HIVE_MCP_AUTH_TOKEN": f"alice:{ALICE},bob:{BOB},root:{ROOT}",
                "HIVE_MCP_ADMINS": "root",
            }  # fmt: skip
            servers.append(HttpServer(transport, env, tmp_path, f"notify{i}", args=["--stateless"] * (count > 1)))
        try:
            for server in servers:
                server.wait_loaded()  # the tests' calls are bounded as calls, not as litellm's import
            yield servers[0], servers[-1], upstream, mode
        finally:
            codes = [server.terminate() for server in servers]
            assert codes == [0] * count, [server.stderr() for server in servers]


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


def handler(heard: Heard, mode: str) -> Any:
    """A legacy session's notifications come to its message handler; a listen stream's, from `listen`."""
    return heard.message if mode == "legacy" else None


@contextlib.asynccontextmanager
async def sessions(served: Served, heard: dict[str, Heard]) -> AsyncIterator[tuple[Client, ...]]:
    """Alice's and bob's listening sessions (on the first server), their calling ones (on the last), and a task
    group for the listening, cancelled on the way out."""
    listening, calling, _, mode = served
    async with (
        Client(authed_target(listening, ALICE)(), mode=mode, message_handler=handler(heard["alice"], mode)) as a_hears,
        Client(authed_target(listening, BOB)(), mode=mode, message_handler=handler(heard["bob"], mode)) as b_hears,
        Client(authed_target(calling, ALICE)(), mode=mode) as alice,
        Client(authed_target(calling, BOB)(), mode=mode) as bob,
        anyio.create_task_group() as tg,
    ):
        yield a_hears, b_hears, alice, bob, tg
        tg.cancel_scope.cancel()


def test_a_dump_is_notified_only_to_its_callers_sessions(served: Served) -> None:
    listening, _, upstream, mode = served
    heard = {"alice": Heard(), "bob": Heard(), "root": Heard()}
    barrier: dict[str, str] = {}

    async def go() -> None:
        async with (
            sessions(served, heard) as (alice_hears, bob_hears, alice, bob, tg),
            Client(authed_target(listening, ROOT)(), mode=mode, message_handler=handler(heard["root"], mode)) as root,
        ):
            await tg.start(watch, root, heard["root"], [INDEX], mode)
            barrier.update(alice=await start(alice), bob=await start(bob))
            await tg.start(watch, alice_hears, heard["alice"], [INDEX, barrier["alice"]], mode)
            await tg.start(watch, bob_hears, heard["bob"], [INDEX, barrier["bob"]], mode)
            await fail(alice, upstream)
            await heard["alice"].until(INDEX)
            await fail(bob, upstream)
            on = {"prompt": "on", "conversation_id": barrier["bob"].rsplit("/", 1)[1]}
            for _ in range(2):  # two continuations, each heard: see the module's docstring
                seen = heard["bob"].uris.count(barrier["bob"])
                going_on = await bob.call_tool("complete", on)
                assert not going_on.is_error, text_of(going_on)
                await heard["bob"].until(barrier["bob"], seen + 1)
            await heard["root"].until(INDEX, 2)  # the admin hears of alice's dump and of bob's
            tg.cancel_scope.cancel()  # root's listening ends before root's session does

    anyio.run(go)
    bob = heard["bob"].uris
    before_barrier = bob[: len(bob) - bob[::-1].index(barrier["bob"])]
    assert before_barrier.count(INDEX) == 1, bob  # his own dump, and never alice's (written before his)
    assert heard["alice"].uris.count(INDEX) >= 1, heard["alice"].uris


def test_a_conversation_and_spend_are_notified_only_to_their_callers_sessions(served: Served) -> None:
    """Alice starts a conversation, which changes her conversations and her spend, and hears both; only then
    does bob's call fail. Up to his dump's notification bob has heard nothing of hers."""
    _, _, upstream, mode = served
    heard = {"alice": Heard(), "bob": Heard()}
    uris = [INDEX, CONVERSATIONS, USAGE]

    async def go() -> None:
        async with sessions(served, heard) as (alice_hears, bob_hears, alice, bob, tg):
            await tg.start(watch, alice_hears, heard["alice"], uris, mode)
            await tg.start(watch, bob_hears, heard["bob"], uris, mode)
            await start(alice)
            await heard["alice"].until(CONVERSATIONS)
            await heard["alice"].until(USAGE)
            await fail(bob, upstream)
            await heard["bob"].until(INDEX)

    anyio.run(go)
    bob = heard["bob"].uris
    assert bob[: bob.index(INDEX)] == [], bob  # nothing of alice's conversation or spend came before
