"""One caller cannot cool a deployment down for every other: a failure that was the request's own fault (a request
litellm refused to build, the upstream's 400/422, context window exceeded, content policy) never counts against the
deployment that refused it; nor does a caller's own deadline running out (only the config's `timeout` is the
deployment's), nor a caller's cancel. Through litellm's real Router and HTTP path, each deployment a scripted upstream.

Group `solo` has one deployment and a fallback group, `spare`: litellm holds back the cooldown of a group's only
deployment unless the group has somewhere else to go, so this is the smallest config where one can cool down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from hive_mcp.dumps import DumpStore
from hive_mcp.llms import load_config
from hive_mcp.provider import LiteLLMProvider, ProviderError, TextDeltaEvent
from hive_mcp.provider.facts import ConfigCatalogue
from hive_mcp.provider.routing import ModelRouter
from tests.clients import Progress, connect, mcp_server, until, wait_thread_event
from tests.conftest import FAST_RETRY
from tests.provider_calls import USER
from tests.routing_configs import config_text, make_provider
from harness.shapes import azure_filtered_reply
from harness.upstream import Reply, Upstream

KEY = "sk-cooldown-callers-0123456789SECRET"
SOLO, SPARE = "openai/model-solo", "openai/model-spare"


def routed(tmp_path: Path, ups: list[Upstream], router: str) -> tuple[LiteLLMProvider, ModelRouter, Any]:
    """A provider on group `solo` (deployment a, falling back to `spare`: deployment b), and its catalogue."""
    a, b, _ = ups
    path = tmp_path / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: solo
    litellm_params: {{model: {SOLO}, api_base: "{a.base_url}", api_key: {KEY}}}
  - model_name: spare
    litellm_params: {{model: {SPARE}, api_base: "{b.base_url}", api_key: {KEY}}}
router_settings:
  fallbacks: [{{solo: [spare]}}]
  cooldown_time: 60
{router}
""")
    config = load_config(path, {})
    router_ = ModelRouter(config)
    catalogue = ConfigCatalogue(config)
    catalogue.attach(router_)
    provider = LiteLLMProvider(model="solo", router=router_, retry=FAST_RETRY, dump_store=DumpStore(tmp_path / "dumps"))
    return provider, router_, catalogue


def solo_entry(listing: dict[str, Any]) -> dict[str, Any]:
    [group] = [g for g in listing["groups"] if g["name"] == "solo"]
    [deployment] = group["deployments"]
    return deployment


async def test_a_callers_filtered_prompts_leave_the_deployment_serving_every_other_caller(tmp_path, ups) -> None:
    """Caller A's prompt trips the provider's content filter (Azure's shape, which litellm raises as a 500) on every
    call; with allowed_fails 1 two such failures cooled `solo`'s only deployment for everyone. Caller B's call still
    goes to it, and list_models shows it healthy."""
    a, b, _ = ups
    provider, router, catalogue = routed(tmp_path, ups, "  allowed_fails: 1")
    a.script(*[azure_filtered_reply(["hate"])] * 3, Reply.text("for caller B"))
    b.script(*[azure_filtered_reply(["hate"])] * 3)
    server = mcp_server(provider, provider.dump_store, catalogue=catalogue, default_model="solo")
    async with connect(server, "auto") as caller_a, connect(server, "auto") as caller_b:
        for _ in range(3):
            refused = await caller_a.call_tool("complete", {"prompt": "something the filter stops"})
            assert refused.is_error and "content_policy" in refused.content[0].text  # type: ignore[union-attr]
        answered = await caller_b.call_tool("complete", {"prompt": "hello"})
        listing = await caller_b.call_tool("list_models", {})
    assert not answered.is_error and answered.structured_content is not None
    assert answered.structured_content["model"] == SOLO, answered.structured_content
    assert answered.structured_content["content"] == "for caller B"
    assert len(a.chat_requests()) == 4  # each of A's calls reached it too
    assert listing.structured_content is not None
    assert solo_entry(listing.structured_content) | {"healthy": True, "cooldown_until": None} == solo_entry(
        listing.structured_content
    )
    assert router.cooling(router.deployments("solo")) == {}


UNKNOWN_PART = [{"role": "user", "content": [{"type": "no-such-part", "text": "hi"}]}]
CONTEXT = Reply.error(400, "This model's maximum context length is 10 tokens", code="context_length_exceeded")
POLICY = Reply.error(400, "blocked by content policy", code="content_policy_violation")


@pytest.mark.parametrize(
    ("messages", "reply", "error_type"),
    [
        pytest.param(UNKNOWN_PART, None, "bad_request", id="litellm-refused-to-build-it"),
        pytest.param(USER, Reply.error(400, "temperature: must be at most 2"), "bad_request", id="upstream-400"),
        pytest.param(USER, Reply.error(422, "messages: unprocessable"), "bad_request", id="upstream-422"),
        pytest.param(USER, CONTEXT, "context_window", id="context-window"),
        pytest.param(USER, POLICY, "content_policy", id="content-policy"),
    ],
)
async def test_a_callers_bad_requests_do_not_count_toward_a_deployments_failure_rate(
    tmp_path, ups, messages: list[dict[str, Any]], reply: Reply | None, error_type: str
) -> None:
    """Without allowed_fails litellm cools a deployment of a group of several down by its failures this minute
    (over half of at least 5). Caller A's five bad requests to deployment a of `fast`, counted, made one 503 from
    a enough to cool it down for every caller; not counted, a 503 is one failure of one, and a keeps serving."""
    a, b, _ = ups
    provider, store = make_provider(tmp_path, config_text(ups))
    router = provider.router
    assert router is not None
    a_dep = next(d for d in router.deployments("fast") if d.model == "openai/model-a")
    if reply is not None:
        a.script(*[reply] * 20)
        b.script(*[reply] * 20)
    on_a = 0
    while on_a < 5:  # the strategy picks either deployment: until five of A's requests went to a
        with pytest.raises(ProviderError) as info:
            await provider.acomplete(messages, model="fast", max_retries=0)
        assert info.value.error_type == error_type, str(info.value)
        assert info.value.dump_id is not None
        on_a += store.read(info.value.dump_id).attempts[0].deployment == "openai/model-a"
    a.unscript()
    b.unscript()
    a.script(Reply.error(503))
    while not any(r.messages[0]["content"] == "B" for r in a.chat_requests()):  # until a call of B's met the 503
        response = await provider.acomplete([{"role": "user", "content": "B"}], model="fast")
        assert response.content == "default reply"
    assert router.cooling([a_dep]) == {}


# -- a caller's deadline and a caller's cancel are the caller's, never the deployment's ----------------------------


def stalling(tmp_path: Path, ups: list[Upstream], tool: str) -> tuple[MCPServer, ModelRouter]:
    """A server on `solo` with allowed_fails 0 (one failure counted cools it down), whose deployment takes two calls
    and does not answer them (`complete`) or stops after the first chunk (`stream_complete`), then answers."""
    provider, router, catalogue = routed(tmp_path, ups, "  allowed_fails: 0")
    stalled = Reply.hang() if tool == "complete" else Reply.stream(["so far"], hold_after=1)
    ups[0].script(stalled, stalled, Reply.text("for caller B"))
    return mcp_server(provider, provider.dump_store, catalogue=catalogue, default_model="solo"), router


def served_by_solo(answered: Any, ups: list[Upstream], router: ModelRouter) -> None:
    """Caller B's call was answered by `solo`'s deployment, not its fallback, and it is not cooling down."""
    assert not answered.is_error and answered.structured_content is not None
    assert answered.structured_content["model"] == SOLO and ups[1].chat_requests() == []
    assert router.cooling(router.deployments("solo")) == {}


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_callers_own_deadline_running_out_does_not_cool_the_deployment(tmp_path, ups, tool: str) -> None:
    """`deadline_s` is the caller's: with allowed_fails 0 one failure counted would cool `solo` down. Caller A's
    deadline runs out on a deployment that has not answered (or stopped mid-stream); caller B's call still goes to
    it. Only the config's own `timeout` is the deployment's (the next test)."""
    server, router = stalling(tmp_path, ups, tool)
    async with connect(server, "auto") as caller_a, connect(server, "auto") as caller_b:
        for _ in range(2):
            late = await caller_a.call_tool(tool, {"prompt": "take your time", "deadline_s": 0.3})
            assert late.is_error and "deadline of 0.3s ran out" in late.content[0].text  # type: ignore[union-attr]
        answered = await caller_b.call_tool("complete", {"prompt": "hello"})
    served_by_solo(answered, ups, router)


async def test_the_configs_own_timeout_running_out_cools_the_deployment(tmp_path, ups) -> None:
    """The config's `timeout` is the deployment's: its expiry is litellm's Timeout, which counts (allowed_fails 0: at
    once), and the next call goes to the fallback."""
    a, b, _ = ups
    provider, router, _ = routed(tmp_path, ups, "  allowed_fails: 0\n  timeout: 0.3")
    a.script(Reply.hang())
    response = await provider.acomplete(USER, max_retries=0)
    assert response.model == SPARE
    assert list(router.cooling(router.deployments("solo"))) == [router.deployments("solo")[0].id]


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
async def test_a_callers_cancel_does_not_cool_the_deployment(tmp_path, ups, tool: str) -> None:
    """Caller A cancels (notifications/cancelled) while the deployment works on its call, before any reply or
    mid-stream, twice; with allowed_fails 0 one cancel counted would cool `solo` down. Caller B's call goes to it."""
    a = ups[0]
    server, router = stalling(tmp_path, ups, tool)
    async with connect(server, "auto") as caller_a, connect(server, "auto") as caller_b:
        for sent in (1, 2):
            a.client_gone.clear()
            progress = Progress()
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()

                async def call() -> None:
                    with scope:
                        await caller_a.call_tool(tool, {"prompt": "never mind"}, progress_callback=progress)

                tg.start_soon(call)
                await until(lambda: len(a.chat_requests()) == sent, "the upstream has A's request")
                if tool == "stream_complete":
                    await progress.wait_for(lambda items: any(m for _, m in items))
                scope.cancel()
            assert await wait_thread_event(a.client_gone), "the upstream connection stayed open after the cancel"
        answered = await caller_b.call_tool("complete", {"prompt": "hello"})
    served_by_solo(answered, ups, router)


async def test_closing_a_stream_mid_way_does_not_cool_the_deployment(tmp_path, ups) -> None:
    """A caller of the provider's stream that stops reading and closes it mid-stream: the deployment keeps serving."""
    a, b, _ = ups
    provider, router, _ = routed(tmp_path, ups, "  allowed_fails: 0")
    a.script(Reply.stream(["so far", "never read"], hold_after=1), Reply.text("for caller B"))
    stream = provider.stream(USER)
    async for event in stream:
        if isinstance(event, TextDeltaEvent):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await wait_thread_event(a.client_gone), "the upstream connection stayed open after the close"
    response = await provider.acomplete(USER)
    assert response.model == SOLO and b.chat_requests() == []
    assert router.cooling(router.deployments("solo")) == {}
