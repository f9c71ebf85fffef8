"""What recorded provider replies cost: each reply of ../shared/cassettes (read at test time, never copied here)
served by harness/upstream.py through litellm's real HTTP path to a server in process, and the ledger's row on a
real SQLite file and a real valkey-server. A reply the upstream answered is charged, however litellm took it; a
call refused with an error status and nothing else costs nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from harness.upstream import Reply, Upstream
from tests.cassettes import CASSETTES, load, route
from tests.clients import connect, mcp_server, text_of, until
from tests.spend_calls import cancel_once, retries_logged

if not CASSETTES.is_dir():
    pytest.skip(f"no recordings at {CASSETTES} (a clone outside the workspace)", allow_module_level=True)

from hive_mcp.dumps import DumpStore  # noqa: E402
from hive_mcp.mcp.results import call_facts  # noqa: E402
from hive_mcp.provider import LiteLLMProvider  # noqa: E402
from hive_mcp.provider.retry import RetryPolicy  # noqa: E402
from hive_mcp.spend import Budgets, CallRecord, Spend  # noqa: E402
from hive_mcp.spend.budgets import micro  # noqa: E402
from hive_mcp.spend.ledger import Backend  # noqa: E402

EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
PROMPT = [{"role": "user", "content": "hello"}]


def served(name: str, upstream: Upstream, store: DumpStore, retry: RetryPolicy) -> LiteLLMProvider:
    """A provider for recording `name`'s own litellm route, pointed at `upstream`, which serves that recording."""
    recording = load(name)
    upstream.script(*[Reply.recording(recording)] * 5)  # a retried call is answered the same each time
    where = route(recording, upstream.anthropic_base)
    return LiteLLMProvider(
        model=where.model, api_key="test-key", api_base=where.api_base, retry=retry, dump_store=store, **where.extra
    )


async def charged(provider: LiteLLMProvider, ledger: Backend, store: DumpStore, tool: str) -> list[CallRecord]:
    """The rows one failed call to `tool` leaves in `ledger`."""
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend, default_model=provider.model)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(tool, {"prompt": "hello"})
    assert failed.is_error, text_of(failed)
    return spend.settled().calls(EPOCH)


async def test_an_azure_reply_its_content_filter_stopped_is_charged_the_usage_it_carried(
    upstream: Upstream, store: DumpStore, ledger: Backend
) -> None:
    """Azure's real filtered reply has no `message`, so litellm refuses it; the usage it carried was billed."""
    provider = served("azure-nonstream-content-filter-01", upstream, store, RetryPolicy(time_scale=0))
    [call] = await charged(provider, ledger, store, "complete")
    assert (call.input_tokens, call.output_tokens, call.estimated) == (15, 19, False)


@pytest.mark.parametrize(
    ("name", "tool"), [("groq-nonstream-text-01", "complete"), ("gemini-stream-json-array-01", "stream_complete")]
)
async def test_a_reply_litellm_could_not_read_is_charged_its_prompt(
    upstream: Upstream, store: DumpStore, ledger: Backend, name: str, tool: str
) -> None:
    """The upstream answered 200 (and billed it); litellm could not read the reply: the call owes its prompt, for
    each time it was asked (litellm reads Gemini's JSON array as an empty stream, which is retried)."""
    provider = served(name, upstream, store, RetryPolicy(time_scale=0))
    [call] = await charged(provider, ledger, store, tool)
    prompt = provider.count_tokens(PROMPT, provider.model)
    asked = len(upstream.chat_requests())
    assert prompt and call.estimated and (call.input_tokens, call.output_tokens) == (asked * prompt, 0)


async def test_a_call_cancelled_while_it_waits_after_rate_limits_costs_nothing(
    upstream: Upstream, store: DumpStore, ledger: Backend
) -> None:
    """A 429 (gemini-error-429-01), then the client cancels during the minute's backoff: the upstream never worked
    on the call."""
    provider = served("gemini-error-429-01", upstream, store, RetryPolicy(base_delay_s=60))
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend, default_model=provider.model)
    args: dict[str, Any] = {"prompt": "hello"}
    with retries_logged() as retries:
        async with connect(server, "legacy") as c:
            await cancel_once(c, "complete", args, lambda: until(lambda: retries.count == 1, "the 429 recorded"))
    assert len(upstream.chat_requests()) == 1
    assert spend.settled().calls(EPOCH) == []



@pytest.mark.parametrize(
    ("name", "tokens", "estimated", "deployment"),
    [
        ("openai-stream-tools-parallel-01", None, True, None),  # no usage anywhere: litellm's count
        ("groq-stream-text-01", (18, 73), False, None),  # Groq's own usage, in x_groq.usage alone
        ("azure-stream-text-usage-01", None, False, "gpt-4o-mini-2024-07-18"),  # the model its chunks name
        ("openai-stream-text-usage-01", None, False, "gpt-4o-mini-2024-07-18"),  # so too on OpenAI's own route
    ],
)
async def test_a_recorded_stream_is_recorded_as_the_provider_answered_it(
    upstream: Upstream, store: DumpStore, ledger: Backend, name: str, tokens: tuple[int, int] | None,
    estimated: bool, deployment: str | None,
) -> None:  # fmt: skip
    provider = served(name, upstream, store, RetryPolicy(time_scale=0))
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend, default_model=provider.model)
    async with connect(server, "legacy") as c:
        result = await c.call_tool("stream_complete", {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    [call] = spend.settled().calls(EPOCH)
    assert call.estimated == estimated
    if tokens is not None:
        assert (call.input_tokens, call.output_tokens) == tokens
    if deployment is not None:
        assert call.deployment == deployment


async def test_openrouters_recorded_stream_is_charged_the_cost_it_states(
    upstream: Upstream, store: DumpStore, ledger: Backend
) -> None:
    """OpenRouter's stream (openrouter-stream-reasoning-01) ends with `usage.cost` 0.000669: what the caller is
    billed, charged as it is, though litellm's map has no price for the model."""
    provider = served("openrouter-stream-reasoning-01", upstream, store, RetryPolicy(time_scale=0))
    assert provider.price(provider.model) is None
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend, default_model=provider.model)
    async with connect(server, "legacy") as c:
        result = await c.call_tool("stream_complete", {"prompt": "hello"})
    assert not result.is_error, text_of(result)
    assert call_facts(result)["cost_usd"] == pytest.approx(0.000669) and "unpriced" not in call_facts(result)
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.cost, call.unpriced) == (43, 36, micro(0.000669), False)


@pytest.mark.parametrize("tool", ["stream_complete", "complete"])
@pytest.mark.parametrize("stated", [0.000123, 0.0], ids=["cost-stated", "as-recorded-free"])
async def test_openrouters_recorded_stream_that_fails_midway_is_charged_the_usage_and_cost_it_states(
    upstream: Upstream, store: DumpStore, ledger: Backend, tool: str, stated: float
) -> None:
    """OpenRouter's stream (openrouter-stream-error-midstream-01) ends in a chunk carrying an error and its usage:
    43 prompt and 10 completion tokens at `usage.cost` 0, its model being free; here as recorded, and with that
    figure stated as `stated`. The provider billed the reply, so the failed call is charged its usage as the
    upstream stated it (never litellm's count), and the cost stated, though litellm's map has no price for the
    model; a cost of 0 is no price: unpriced. Streamed, litellm raises on the error chunk; not streamed, it cannot
    read the event stream and quotes it."""
    recording = load("openrouter-stream-error-midstream-01")
    text = recording["response_text"]
    assert text.count('"cost":0,') == 1
    recording = {**recording, "response_text": text.replace('"cost":0,', f'"cost":{stated},')}
    upstream.script(*[Reply.recording(recording)] * 5)
    where = route(recording, upstream.anthropic_base)
    provider = LiteLLMProvider(
        model=where.model, api_key="test-key", api_base=where.api_base, retry=RetryPolicy(time_scale=0),
        dump_store=store, **where.extra,
    )  # fmt: skip
    assert provider.price(provider.model) is None
    spend = Spend(ledger, Budgets(), provider)
    server = mcp_server(provider, store, spend=spend, default_model=provider.model)
    async with connect(server, "legacy") as c:
        failed = await c.call_tool(tool, {"prompt": "hello"})
    assert failed.is_error and failed.structured_content is not None, text_of(failed)
    assert len(upstream.chat_requests()) == 1
    charged = {"input_tokens": 43, "output_tokens": 10, "cost_usd": stated or None, "estimated": False}
    assert failed.structured_content["charged"] == charged | ({} if stated else {"unpriced": True})
    [call] = spend.settled().calls(EPOCH)
    assert (call.input_tokens, call.output_tokens, call.cost, call.unpriced, call.estimated) == (
        43, 10, micro(stated), not stated, False,
    )  # fmt: skip
