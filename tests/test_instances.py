"""Two stateless hive-mcp instances on two ports sharing one real valkey-server, behind a "load balancer".

The client's HTTP requests alternate between the instances (or go to the one
a step names), as a balancer without session affinity would send them: the
handshake on one and the calls on the other, a conversation continued across
them, a dump written by one and heard on the other's listen stream, and a
cooldown one caused that the other respects. Each instance has its own dump
directory, as on two machines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.clients import hear
from tests.servers import HttpServer, Session, dump_id_in, instances_on
from tests.clients import text_of
from harness.upstream import RecordedRequest, Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

DEP_KEY = "sk-instances-0123456789SECRET"


class Balancer(httpx2.AsyncBaseTransport):
    """Sends each request to the next instance in turn, or to `pinned`; records (method, port)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.pinned: int | None = None
        self.turn = 0
        self.answers: list[tuple[str, int]] = []
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.pinned if self.pinned is not None else self.ports[self.turn % len(self.ports)]
        self.turn += 1
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                self.answers.append((body.get("method", "?") if isinstance(body, dict) else "batch", port))
            except ValueError:
                pass
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def ports_of(self, method: str) -> set[int]:
        return {port for m, port in self.answers if m == method}


def balanced(url: str, balancer: Balancer) -> Callable[[], Any]:
    @asynccontextmanager
    async def target() -> AsyncIterator[Any]:
        async with httpx2.AsyncClient(transport=balancer, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams

    return target


def write_config(path: Path, cold: Upstream, warm: Upstream, broken: Upstream, redis_port: int) -> Path:
    path.write_text(f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/model-a, api_base: "{cold.base_url}", api_key: os.environ/DEP_KEY}}
  - model_name: fast
    litellm_params: {{model: openai/model-b, api_base: "{warm.base_url}", api_key: os.environ/DEP_KEY}}
  - model_name: broken
    litellm_params: {{model: openai/model-c, api_base: "{broken.base_url}", api_key: os.environ/DEP_KEY}}
router_settings:
  cooldown_time: 120
  redis_host: 127.0.0.1
  redis_port: {redis_port}
""")
    return path


def _warm(request: RecordedRequest) -> Reply:
    if isinstance(request.body, dict) and request.body.get("stream"):
        return Reply.stream(["held ", "text"], hold_after=1)
    return Reply.text("from warm")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Upstream, Upstream, Upstream]]:
    """cold always answers 429 (Retry-After 30); warm answers; broken answers 500."""
    ups = (
        Upstream(Reply.error(429, headers={"retry-after": "30"})).start(),
        Upstream(reply_for=_warm).start(),
        Upstream(Reply.error(500, "upstream exploded")).start(),
    )
    yield ups
    for up in ups:
        up.stop()


@pytest.fixture(scope="module")
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess(valkey_binary()) as server:  # its own: the change channel is server-wide
        yield server


@pytest.fixture(scope="module")
def instances(
    upstreams: tuple[Upstream, Upstream, Upstream], valkey: ValkeyProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[HttpServer]]:
    workdir = tmp_path_factory.mktemp("instances")
    config = write_config(workdir / "config.yaml", *upstreams, redis_port=valkey.port)
    with instances_on(valkey.url, workdir, ("one", "two"), ["--config", str(config)], DEP_KEY=DEP_KEY) as servers:
        yield servers


def ports(servers: list[HttpServer]) -> list[int]:
    return [s.port for s in servers]


def call(c: Client, **args: Any) -> Any:
    return c.call_tool("complete", {"prompt": "hi", **args})


# First: a later test's calls could cool the deployment down before this one watches it happen.
def test_a_cooldown_caused_on_one_instance_holds_on_the_other(
    instances: list[HttpServer], upstreams: tuple[Upstream, Upstream, Upstream]
) -> None:
    cold = upstreams[0]
    one, two = ports(instances)
    balancer = Balancer([one, two])
    balancer.pinned = one
    session = Session(balanced(instances[0].url, balancer), "auto")
    try:

        async def go(c: Client) -> int:
            before = len(cold.chat_requests())
            for _ in range(40):  # until one call tried the cold deployment first (its 429 cools it)
                result = await call(c, model="fast")
                assert not result.is_error, text_of(result)
                if len(cold.chat_requests()) > before:
                    break
            assert len(cold.chat_requests()) > before, "no call went to the cold deployment"
            cooled = len(cold.chat_requests())
            balancer.pinned = two
            for _ in range(10):
                result = await call(c, model="fast")
                assert not result.is_error and text_of(result) == "from warm", text_of(result)
            return len(cold.chat_requests()) - cooled

        after = session.run(go, timeout=120)
    finally:
        session.close()
    assert after == 0  # the other instance never sent to the deployment the first one cooled down


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_initialize_on_one_instance_and_calls_on_the_other(instances: list[HttpServer], mode: str) -> None:
    one, two = ports(instances)
    balancer = Balancer([one, two])
    balancer.pinned = one
    session = Session(balanced(instances[0].url, balancer), mode)
    try:

        async def go(c: Client) -> list[Any]:
            balancer.pinned = None  # alternate from here on
            results = [await call(c, model="fast", max_retries=0) for _ in range(4)]
            results.append(await c.read_resource("hive://failed-requests"))
            results.append(await c.read_resource("hive://failed-requests"))
            return results

        results = session.run(go, timeout=90)
    finally:
        session.close()
    for result in results[:4]:
        assert not result.is_error and text_of(result) == "from warm", text_of(result)
    assert balancer.ports_of("tools/call") == {one, two}, balancer.answers
    assert balancer.ports_of("resources/read") == {one, two}, balancer.answers
    if mode == "legacy":
        assert balancer.ports_of("initialize") == {one}


def test_a_conversation_continues_on_the_other_instance(
    instances: list[HttpServer], upstreams: tuple[Upstream, Upstream, Upstream]
) -> None:
    one, two = ports(instances)
    warm = upstreams[1]
    balancer = Balancer([one, two])
    balancer.pinned = one
    session = Session(balanced(instances[0].url, balancer), "auto")
    try:

        async def go(c: Client) -> tuple[Any, Any]:
            first = await call(c, model="fast", prompt="my name is Ada")
            balancer.pinned = two
            second = await call(c, model="fast", prompt="what is my name?",
                                conversation_id=first.structured_content["conversation_id"])
            return first, second

        first, second = session.run(go, timeout=90)
    finally:
        session.close()
    assert not second.is_error, text_of(second)
    assert second.structured_content["conversation_id"] == first.structured_content["conversation_id"]
    sent = json.dumps(warm.chat_requests()[-1].messages)
    assert "my name is Ada" in sent and "from warm" in sent and "what is my name?" in sent  # the history, from Redis


def test_a_dump_written_by_one_instance_is_heard_and_read_on_the_other(instances: list[HttpServer]) -> None:
    one, two = ports(instances)
    balancer = Balancer([one, two])
    balancer.pinned = one
    session = Session(balanced(instances[0].url, balancer), "auto")
    try:

        async def go(c: Client) -> tuple[Any, Any, Any]:
            async with c.listen(resources_list_changed=True, resource_subscriptions=["hive://failed-requests"]) as sub:
                balancer.pinned = two
                failed = await call(c, model="broken", max_retries=0)
                await hear(sub, {"ResourcesListChanged", "hive://failed-requests"}, timeout=30)
            balancer.pinned = one
            assert failed.is_error, text_of(failed)
            dump_id = dump_id_in(text_of(failed))
            one_read = await c.read_resource(f"hive://failed-requests/{dump_id}")
            listing = await c.call_tool("list_failed_requests", {"limit": 200})
            return dump_id, one_read, listing

        dump_id, one_read, listing = session.run(go, timeout=90)
    finally:
        session.close()
    assert "upstream exploded" in one_read.contents[0].text  # written by two, in Redis, read through one
    assert dump_id in {i["id"] for i in listing.structured_content["items"]}
    assert not list((instances[1].stderr_path.parent / "two-dumps").glob("*.json"))  # in Redis, not on disk
    assert balancer.ports_of("subscriptions/listen") == {one}
    assert [p for m, p in balancer.answers if m == "tools/call"][0] == two


STREAMS = 50


def test_redis_stopped_in_the_middle_of_50_streams(
    instances: list[HttpServer], upstreams: tuple[Upstream, Upstream, Upstream], valkey: ValkeyProcess
) -> None:
    """Streams in flight on both instances; Redis stops; failing calls meanwhile; Redis returns.

    Every call gets one outcome (the streams their whole text), every dump written
    while Redis was away is kept and, once it is back, readable through both
    instances, and a conversation started afterwards continues across them.
    """
    warm = upstreams[1]
    one, two = ports(instances)
    balancer = Balancer([one, two])
    session = Session(balanced(instances[0].url, balancer), "auto")
    failing = STREAMS // 10
    try:

        async def go(c: Client) -> tuple[list[Any], list[Any]]:
            streamed: list[Any] = []
            failed: list[Any] = []
            started = [anyio.Event() for _ in range(STREAMS - failing)]

            async def stream(i: int) -> None:
                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        started[i].set()

                streamed.append(await c.call_tool("stream_complete", {"prompt": f"s{i}", "model": "fast"},
                                                  progress_callback=on_progress))  # fmt: skip

            async with anyio.create_task_group() as tg:
                for i in range(STREAMS - failing):
                    tg.start_soon(stream, i)
                with anyio.fail_after(60):
                    for event in started:
                        await event.wait()  # every stream in flight, held after its first text
                await anyio.to_thread.run_sync(valkey.stop)
                for _ in range(failing):
                    failed.append(await call(c, model="broken", max_retries=0))
                warm.release()
            return streamed, failed

        streamed, failed = session.run(go, timeout=180)
        valkey.start()
        dump_ids = [dump_id_in(text_of(f)) for f in failed]

        async def recovered(c: Client) -> tuple[list[str], Any]:
            for pinned in (one, two):  # a write that reaches Redis moves the local dumps there
                balancer.pinned = pinned
                for _ in range(40):
                    log = instances[ports(instances).index(pinned)].stderr()
                    if log.count("every store uses it again") == log.count("is unavailable ("):
                        break
                    await call(c, model="broken", max_retries=0)  # a failure to tell, if it has not yet
                    await anyio.sleep(0.5)  # the state store's probe asks Redis again every second
                await call(c, model="broken", max_retries=0)  # reaches Redis, and moves the local dumps there
            texts = []
            for pinned in (one, two):
                balancer.pinned = pinned
                for dump_id in dump_ids:
                    texts.append((await c.read_resource(f"hive://failed-requests/{dump_id}")).contents[0].text)
            balancer.pinned = one
            first = await call(c, model="fast", prompt="after the outage")
            balancer.pinned = two
            return texts, await call(c, model="fast", prompt="still?",
                                     conversation_id=first.structured_content["conversation_id"])

        texts, continued = session.run(recovered, timeout=180)
    finally:
        session.close()
        if not _pong(valkey):  # the module's later tests (none today) get their Redis back
            valkey.start()
    assert len(streamed) == STREAMS - failing
    for result in streamed:
        assert not result.is_error and text_of(result) == "held text", text_of(result)
    assert len(failed) == failing and all(f.is_error for f in failed)
    assert len(texts) == 2 * failing and all("upstream exploded" in t for t in texts)  # no dump lost
    assert not continued.is_error, text_of(continued)
    for server in instances:
        log = server.stderr()
        assert "Traceback" not in log, log
        assert log.count("is unavailable (") <= 1  # one warning per outage, for every store


def _pong(server: ValkeyProcess) -> bool:
    from harness.valkey import pong

    return pong(server.port)
