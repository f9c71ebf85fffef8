"""Routing through a models config: deployments, aliases, fallbacks and cooldowns, each deployment a
scripted upstream on its own port, every request through litellm's real HTTP path."""

from __future__ import annotations

import threading
import time

import pytest

from hive_mcp.provider import FinishEvent, ProviderError, StreamErrorEvent, TextDeltaEvent
from tests.conftest import FAST_RETRY
from tests.provider_calls import USER, only_dump
from tests.routing_configs import KEY_A, KEY_B, KEY_C, config_text, make_provider
from harness.upstream import Reply, Upstream


def hits(*servers: Upstream) -> list[int]:
    return [len(s.chat_requests()) for s in servers]


async def test_alias_and_group_reach_a_deployment_and_say_which(tmp_path, ups) -> None:
    a, b, c = ups
    provider, _ = make_provider(tmp_path, config_text(ups))
    response = await provider.acomplete(USER, model="quick")
    assert response.model in ("openai/model-a", "openai/model-b")
    assert response.model_group == "fast"
    big = await provider.acomplete(USER, model="big")
    assert (big.model, big.model_group) == ("openai/model-c", "big")
    request = c.chat_requests()[0]
    assert request.body["model"] == "model-c"
    assert request.headers.get("authorization") == f"Bearer {KEY_C}"


async def test_unknown_model_is_not_found_listing_callable_names_without_a_request(tmp_path, ups) -> None:
    provider, _ = make_provider(tmp_path, config_text(ups))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="gpt-4o")
    err = info.value
    assert err.error_type == "not_found" and err.attempts == 0
    assert "'gpt-4o'" in str(err) and "fast, big, quick" in str(err)
    assert "\n" not in str(err)
    assert hits(*ups) == [0, 0, 0]


async def test_unknown_model_lists_the_first_20_names_then_a_count(tmp_path, ups) -> None:
    a = ups[0]
    entries = "\n".join(
        f"  - model_name: m{i:02d}\n    litellm_params: {{model: openai/x, api_base: \"{a.base_url}\", api_key: k}}"
        for i in range(25)
    )
    provider, _ = make_provider(tmp_path, f"model_list:\n{entries}\n")
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="nope")
    text = str(info.value)
    assert "m19" in text and "m20" not in text and "and 5 more" in text


async def test_429_on_one_deployment_moves_the_next_attempt_to_the_other_at_once(tmp_path, ups) -> None:
    a, b, c = ups
    always_429 = Upstream(Reply.error(429, headers={"retry-after": "30"})).start()
    try:
        provider, store = make_provider(tmp_path, config_text([always_429, b, c], router="  allowed_fails: 1000"))
        # The strategy picks either deployment first; call until a call went to the 429 one first.
        for _ in range(30):
            response = await provider.acomplete(USER, model="fast")
            if response.attempts > 1:
                break
        assert response.content == "default reply" and response.attempts == 2
        assert response.model == "openai/model-b"
        dump = store.read(response.dump_id)
        first = dump.attempts[0]
        assert first.error_type == "rate_limit" and first.delay_s == 0.0
        assert (first.model_group, first.deployment) == ("fast", "openai/model-a")
        assert KEY_A not in dump.model_dump_json() and KEY_B not in dump.model_dump_json()
    finally:
        always_429.stop()


async def test_every_deployment_429_honours_retry_after(tmp_path, ups) -> None:
    a, b, _ = ups
    for server in (a, b):
        server.script(Reply.error(429, headers={"retry-after": "7"}))
    provider, store = make_provider(tmp_path, config_text(ups))
    response = await provider.acomplete(USER, model="fast")
    assert response.attempts == 3 and sum(hits(a, b)) == 3
    delays = [r.delay_s for r in only_dump(store).attempts]
    assert delays == [0.0, 7.0]  # to the other deployment at once; then both failed: Retry-After


async def test_fallback_group_after_the_group_is_exhausted(tmp_path, ups) -> None:
    a, b, c = ups
    for server in (a, b):
        server.script(*[Reply.error(503)] * 3)
    c.script(Reply.text("from big"))
    text = config_text(ups, router="  fallbacks: [{fast: [big]}]")
    provider, store = make_provider(tmp_path, text, retry=FAST_RETRY.__class__(max_retries=1, time_scale=0.001))
    response = await provider.acomplete(USER, model="fast")
    assert response.content == "from big"
    assert (response.model, response.model_group) == ("openai/model-c", "fast")
    assert response.attempts == 3 and hits(c) == [1]
    groups = [r.model_group for r in only_dump(store).attempts]
    assert groups == ["fast", "fast"]


async def test_context_window_error_goes_to_context_window_fallbacks(tmp_path, ups) -> None:
    a, b, c = ups
    too_long = Reply.error(400, "This model's maximum context length is 10 tokens", code="context_length_exceeded")
    for server in (a, b):
        server.script(too_long)
    c.script(Reply.text("long enough"))
    text = config_text(ups, router="  context_window_fallbacks: [{fast: [big]}]")
    provider, store = make_provider(tmp_path, text)
    response = await provider.acomplete(USER, model="fast")
    assert response.content == "long enough" and response.attempts == 2
    assert only_dump(store).attempts[0].error_type == "context_window"


async def test_context_window_error_without_its_fallbacks_is_final(tmp_path, ups) -> None:
    a, b, c = ups
    too_long = Reply.error(400, "This model's maximum context length is 10 tokens", code="context_length_exceeded")
    a.script(too_long)
    b.script(too_long)
    provider, _ = make_provider(tmp_path, config_text(ups, router="  content_policy_fallbacks: [{fast: [big]}]"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="fast")
    assert info.value.error_type == "context_window" and info.value.attempts == 1
    assert hits(c) == [0]


async def test_content_policy_error_goes_to_content_policy_fallbacks(tmp_path, ups) -> None:
    a, b, c = ups
    refused = Reply.error(400, "blocked by content policy", code="content_policy_violation")
    a.script(refused)
    b.script(refused)
    c.script(Reply.text("answered"))
    text = config_text(ups, router="  content_policy_fallbacks: [{fast: [big]}]")
    provider, store = make_provider(tmp_path, text)
    response = await provider.acomplete(USER, model="fast")
    assert response.content == "answered"
    assert only_dump(store).attempts[0].error_type == "content_policy"


async def test_cooldown_after_allowed_fails_and_its_end_after_cooldown_time(tmp_path, ups) -> None:
    a, b, _ = ups
    text = config_text(ups, router="  allowed_fails: 1\n  cooldown_time: 0.5")
    provider, _ = make_provider(tmp_path, text)
    router = provider.router
    assert router is not None
    changed = threading.Event()
    router.add_listener(changed.set)
    a_dep = next(d for d in router.deployments("fast") if d.model == "openai/model-a")
    a.script(*[Reply.error(503)] * 2)
    # Two failures of deployment a (allowed_fails 1): it cools down.
    while len(a.chat_requests()) < 2:
        await provider.acomplete(USER, model="fast")
    assert changed.wait(5)
    assert a_dep.id in router.cooling([a_dep])
    before = len(a.chat_requests())
    for _ in range(6):
        response = await provider.acomplete(USER, model="fast")
        assert response.model == "openai/model-b"
    assert len(a.chat_requests()) == before
    changed.clear()
    assert changed.wait(5)  # the listener hears the cooldown end
    deadline = time.monotonic() + 5
    while len(a.chat_requests()) == before and time.monotonic() < deadline:
        await provider.acomplete(USER, model="fast")
    assert len(a.chat_requests()) > before


async def test_a_deployment_serving_well_is_not_cooled_down_by_a_few_failures_among_its_successes(
    tmp_path, ups
) -> None:
    """Without allowed_fails, litellm cools a deployment of a group of several down when over half of its calls this
    minute failed (at least 5): its successes count. Deployment a answers ten calls, then five 503s: a third of its
    calls, so it keeps serving (with its successes uncounted, the five were all its calls, and it cooled down)."""
    a, b, _ = ups
    provider, _ = make_provider(tmp_path, config_text(ups))
    router = provider.router
    assert router is not None
    a_dep = next(d for d in router.deployments("fast") if d.model == "openai/model-a")
    while len(a.chat_requests()) < 10:
        response = await provider.acomplete(USER, model="fast")
        assert response.attempts == 1
    a.script(*[Reply.error(503)] * 5)
    while len(a.chat_requests()) < 15:  # each 503 goes on to b at once
        response = await provider.acomplete(USER, model="fast")
        assert response.content == "default reply"
    assert router.cooling([a_dep]) == {}


async def test_stream_falls_back_before_the_first_delta(tmp_path, ups) -> None:
    a, b, c = ups
    for server in (a, b):
        server.script(Reply.error(503))
    c.script(Reply.stream(["from ", "big"]))
    text = config_text(ups, router="  fallbacks: [{fast: [big]}]")
    provider, _ = make_provider(tmp_path, text, retry=FAST_RETRY.__class__(max_retries=1, time_scale=0.001))
    events = [e async for e in provider.stream(USER, model="fast")]
    assert "".join(e.content for e in events if isinstance(e, TextDeltaEvent)) == "from big"
    finish = events[-1]
    assert isinstance(finish, FinishEvent)
    assert finish.response.model == "openai/model-c" and finish.response.attempts == 3


async def test_stream_does_not_fall_back_after_the_first_delta(tmp_path, ups) -> None:
    a, b, c = ups
    cut = Reply.stream(["partial ", "text"], drop_after=1, finish_reason=None, done=False)
    a.script(cut)
    b.script(cut)
    text = config_text(ups, router="  fallbacks: [{fast: [big]}]")
    provider, _ = make_provider(tmp_path, text)
    events = [e async for e in provider.stream(USER, model="fast")]
    assert isinstance(events[-1], StreamErrorEvent)
    assert "".join(e.content for e in events if isinstance(e, TextDeltaEvent)) == "partial "
    assert sum(hits(a, b)) == 1 and hits(c) == [0]


async def test_config_secrets_are_redacted_from_errors_and_dumps(tmp_path, ups) -> None:
    a, b, _ = ups
    for server in (a, b):
        server.script(Reply.error(401, f"bad key {KEY_A} {KEY_B}"))
    provider, store = make_provider(tmp_path, config_text(ups))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete(USER, model="fast")
    text = str(info.value) + only_dump(store).model_dump_json()
    assert KEY_A not in text and KEY_B not in text


async def test_usage_based_routing_counts_each_call_against_its_deployments_tpm(tmp_path, ups) -> None:
    a, b, _ = ups
    text = config_text(ups, router="  routing_strategy: usage-based-routing-v2").replace(
        f"api_key: {KEY_B}}}", f"api_key: {KEY_B}, tpm: 10}}")
    provider, _ = make_provider(tmp_path, text)
    first_minute = int(time.time() // 60)
    for _ in range(10):
        await provider.acomplete(USER, model="fast")  # 18 tokens a reply: b is full after one
    minutes = int(time.time() // 60) - first_minute + 1  # the counts are a minute's: b takes one in each
    assert len(hits(b)) == 1 and hits(b)[0] <= minutes and hits(a)[0] >= 10 - minutes


async def test_usage_counters_are_shared_through_redis(tmp_path, ups, valkey_server) -> None:
    a, b, _ = ups
    text = config_text(
        ups, router=f"  routing_strategy: usage-based-routing-v2\n  redis_host: 127.0.0.1\n  redis_port: {valkey_server.port}"
    ).replace(f"api_key: {KEY_B}}}", f"api_key: {KEY_B}, tpm: 10}}")
    first, _ = make_provider(tmp_path, text)
    while not b.chat_requests():
        await first.acomplete(USER, model="fast")  # b is full after its first reply (18 tokens)
    second, _ = make_provider(tmp_path, text)  # another Router: only Redis connects the two
    for _ in range(6):
        assert (await second.acomplete(USER, model="fast")).model == "openai/model-a"
    assert hits(b) == [1]


async def test_a_cooldown_from_another_router_through_redis_reaches_the_listeners(tmp_path, ups, valkey_server) -> None:
    a, b, _ = ups
    a.script(Reply.error(429))
    text = config_text(ups, router=f"  allowed_fails: 0\n  cooldown_time: 60\n  redis_host: 127.0.0.1\n  redis_port: {valkey_server.port}")
    first, _ = make_provider(tmp_path, text)
    second, _ = make_provider(tmp_path, text)
    assert second.router is not None
    changed = threading.Event()
    second.router.add_listener(changed.set)
    while not a.chat_requests():
        await first.acomplete(USER, model="fast")
    assert not changed.is_set()
    await second.acomplete(USER, model="fast")  # its routing reads a's cooldown from Redis
    assert changed.is_set()


def wild_group(ups) -> str:
    """A wildcard group `wild/*` over the first upstream, for `config_text`'s `more`."""
    return f'  - model_name: "wild/*"\n    litellm_params: {{model: "openai/*", api_base: "{ups[0].base_url}", api_key: {KEY_A}}}'


def test_names_a_wildcard_group_takes_are_counted_without_being_kept(tmp_path, ups) -> None:
    """Any name a wildcard group matches is callable, so a caller can make up a new one on every call: each is
    counted as its deployment's model, and none stays in the provider's memory (a listed name does)."""
    provider, _ = make_provider(tmp_path, config_text(ups, more=wild_group(ups)))
    assert provider.counted_as("quick") == "openai/model-a"
    for i in range(5):
        assert provider.counted_as(f"wild/made-up-{i}") == f"openai/made-up-{i}"
    assert set(provider._counted_as) == {"quick"}  # what the provider keeps: the listed names it was asked


@pytest.mark.parametrize("order", ["priced first", "unpriced first"])
async def test_each_name_a_wildcard_deployment_takes_is_priced_as_itself(tmp_path, ups, order: str) -> None:
    """One deployment of a wildcard group answers for many models, some litellm prices and some it does not:
    whether a reply is priced is its model's, never that of the first name the deployment answered for."""
    provider, _ = make_provider(tmp_path, config_text(ups, more=wild_group(ups)))
    names = ["wild/gpt-4o-mini", "wild/made-up-model"]
    if order == "unpriced first":
        names.reverse()
    replies = {name: await provider.acomplete(USER, model=name) for name in names}
    assert replies["wild/made-up-model"].unpriced and replies["wild/made-up-model"].cost_usd == 0.0
    assert not replies["wild/gpt-4o-mini"].unpriced and replies["wild/gpt-4o-mini"].cost_usd > 0
