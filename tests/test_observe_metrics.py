"""The Prometheus metrics in one process: what the provider records per attempt (through litellm's real HTTP path
to the scripted upstream), what a call records, the labels kept bounded, and `GET /metrics` and its guard."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from hive_mcp.observe import labels, metrics
from hive_mcp.observe.endpoint import METRICS_PATH, metrics_app, serve_metrics, with_metrics
from hive_mcp.provider import FinishEvent
from hive_mcp.tokens import bearer_tokens
from harness.upstream import Reply
from tests.conftest import MODEL
from tests.provider_calls import USER
from tests.routing_configs import config_text, make_provider


METRICS_TOKEN = "metrics-0123456789abcdef"


def value(name: str, **label_values: str) -> float:
    return REGISTRY.get_sample_value(name, label_values) or 0.0


@pytest.fixture
def named_model():
    labels.name_models([MODEL], [MODEL])
    yield MODEL
    labels.name_models([], [])


async def test_each_attempt_and_retry_is_counted_by_group_and_outcome(warm, upstream, named_model):
    ok = dict(group=MODEL, deployment=MODEL, outcome="ok", error_category="none")
    failed = dict(ok, outcome="error", error_category="rate_limit")
    before = value("hive_mcp_upstream_attempts_total", **ok), value("hive_mcp_upstream_attempts_total", **failed)
    retries = value("hive_mcp_upstream_retries_total", group=MODEL, error_category="rate_limit")
    upstream.script(Reply.error(429, "slow down"), Reply.text("Paris"))
    await warm.acomplete(USER)
    assert value("hive_mcp_upstream_attempts_total", **ok) == before[0] + 1
    assert value("hive_mcp_upstream_attempts_total", **failed) == before[1] + 1
    assert value("hive_mcp_upstream_retries_total", group=MODEL, error_category="rate_limit") == retries + 1


async def test_an_attempt_cancelled_in_flight_is_counted_as_cancelled(warm, upstream, named_model):
    cancelled = dict(group=MODEL, deployment=MODEL, outcome="cancelled", error_category="none")
    before = value("hive_mcp_upstream_attempts_total", **cancelled)
    upstream.script(Reply.stream(["held ", "never"], hold_after=1))
    first = asyncio.Event()

    async def read() -> None:
        async for _ in warm.stream(USER):
            first.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 10)  # the attempt is in flight, its stream held by the upstream
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    upstream.release()
    assert value("hive_mcp_upstream_attempts_total", **cancelled) == before + 1


async def test_a_group_the_operator_did_not_name_is_counted_as_other(warm, upstream):
    labels.name_models([], [])
    other = dict(group="other", deployment="other", outcome="ok", error_category="none")
    named = dict(other, group=MODEL, deployment=MODEL)
    before = value("hive_mcp_upstream_attempts_total", **other), value("hive_mcp_upstream_attempts_total", **named)
    upstream.script(Reply.text("Paris"))
    await warm.acomplete(USER)
    assert value("hive_mcp_upstream_attempts_total", **other) == before[0] + 1
    assert value("hive_mcp_upstream_attempts_total", **named) == before[1]


async def test_a_streams_first_chunk_is_timed(warm, upstream, named_model):
    count = value("hive_mcp_time_to_first_chunk_seconds_count", group=MODEL, deployment=MODEL)
    total = value("hive_mcp_time_to_first_chunk_seconds_sum", group=MODEL, deployment=MODEL)
    upstream.script(Reply.stream(["Par", "is"], delay=0.2))
    events = [event async for event in warm.stream(USER)]
    assert isinstance(events[-1], FinishEvent)
    assert value("hive_mcp_time_to_first_chunk_seconds_count", group=MODEL, deployment=MODEL) == count + 1
    assert value("hive_mcp_time_to_first_chunk_seconds_sum", group=MODEL, deployment=MODEL) - total >= 0.2


async def test_a_failed_calls_dump_is_counted(warm, upstream):
    before = value("hive_mcp_dumps_written_total")
    upstream.script(Reply.error(400, "bad request"))
    with pytest.raises(Exception):  # noqa: B017, PT011 - the ProviderError itself is tested elsewhere
        await warm.acomplete(USER)
    assert value("hive_mcp_dumps_written_total") == before + 1


def test_a_call_records_its_tokens_cost_duration_and_overhead_by_named_caller():
    bearer_tokens("carol:tok-carol-0123456789", None)  # the operator names carol
    labels.name_models(["fast"], ["openai/gpt-4o-mini"])
    try:
        for caller in ("carol", "1a2b3c4d"):  # an unnamed token's caller: its digest name
            metrics.call(
                "complete", group="fast", deployment="openai/gpt-4o-mini", outcome="ok", error_category=None,
                duration_s=0.5, overhead_s=0.004, caller=caller, input_tokens=10, output_tokens=5, cached_tokens=2,
                reasoning_tokens=1, cost_usd=0.25,
            )  # fmt: skip
    finally:
        labels.name_models([], [])
    assert value("hive_mcp_calls_total", tool="complete", group="fast", deployment="openai/gpt-4o-mini",
                 outcome="ok", error_category="none") >= 2  # fmt: skip
    for who in ("carol", "other"):
        assert value("hive_mcp_tokens_total", group="fast", caller=who, type="input") >= 10
        assert value("hive_mcp_tokens_total", group="fast", caller=who, type="reasoning") >= 1
        assert value("hive_mcp_cost_usd_total", group="fast", caller=who) >= 0.25
    assert value("hive_mcp_tokens_total", group="fast", caller="1a2b3c4d", type="input") == 0
    assert value("hive_mcp_overhead_seconds_count", tool="complete") >= 2
    assert value("hive_mcp_call_duration_seconds_count", tool="complete", group="fast") >= 2


def test_in_flight_calls_rise_and_fall():
    before = value("hive_mcp_calls_in_flight", tool="stream_complete")
    metrics.call_started("stream_complete")
    assert value("hive_mcp_calls_in_flight", tool="stream_complete") == before + 1
    metrics.call_finished("stream_complete")
    assert value("hive_mcp_calls_in_flight", tool="stream_complete") == before


def test_a_made_up_label_value_is_other():
    assert labels.category("rate_limit") == "rate_limit"
    assert labels.category("req-9f8e7d6c-5b4a-3210") == "other"
    assert labels.group("someone's-model") == "other" and labels.caller(None) == "other"


# -- GET /metrics ----------------------------------------------------------------------------


async def scrape(app, client: str = "127.0.0.1", headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.get(METRICS_PATH, headers=headers or {})


async def test_metrics_are_served_in_the_prometheus_text_format_to_loopback():
    metrics.dump_written()
    reply = await scrape(metrics_app(token=None))
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE hive_mcp_dumps_written_total counter" in reply.text


async def test_without_a_metrics_token_only_loopback_may_scrape():
    reply = await scrape(metrics_app(token=None), client="10.1.2.3")
    assert reply.status_code == 403 and "HIVE_MCP_METRICS_TOKEN" in reply.text


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example:8000"},  # a page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
    {"X-Forwarded-For": "203.0.113.9"},  # a reverse proxy on this host, relaying a stranger
    {"Forwarded": "for=203.0.113.9"},
])  # fmt: skip
async def test_without_a_metrics_token_a_loopback_peer_is_a_loopback_client_only_when_it_says_so(headers) -> None:
    reply = await scrape(metrics_app(token=None), headers=headers)
    assert reply.status_code == 403 and "HIVE_MCP_METRICS_TOKEN" in reply.text
    assert "hive_mcp_" not in reply.text
    for host in ("localhost:9464", "127.0.0.1", "[::1]:9464"):  # what a local scraper sends
        assert (await scrape(metrics_app(token=None), headers={"Host": host})).status_code == 200


def test_the_metrics_port_of_a_stdio_server_refuses_a_rebound_page_too() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = serve_metrics(listener, None)
    port = listener.getsockname()[1]
    try:
        for host, status in ((f"evil.example:{port}", 403), (f"127.0.0.1:{port}", 200)):
            reply = httpx.get(f"http://127.0.0.1:{port}{METRICS_PATH}", headers={"Host": host})
            assert reply.status_code == status, (host, reply.text)
    finally:
        server.shutdown()
        server.server_close()


async def test_with_a_metrics_token_every_scrape_must_bring_it():
    app = metrics_app(token=METRICS_TOKEN)
    for client in ("127.0.0.1", "10.1.2.3"):
        assert (await scrape(app, client)).status_code == 401
        wrong = await scrape(app, client, {"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401 and METRICS_TOKEN not in wrong.text
        right = await scrape(app, client, {"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200 and "hive_mcp_" in right.text


async def test_metrics_go_around_the_rest_of_the_app():
    async def rest(scope, receive, send):
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"rest"})

    app = with_metrics(rest, token=None)
    assert (await scrape(app)).status_code == 200
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        assert (await http.get("/mcp")).status_code == 418


async def test_a_deployment_entering_cooldown_says_until_when(tmp_path, ups):
    a, _, _ = ups
    provider, _ = make_provider(tmp_path, config_text(ups, router="  allowed_fails: 0\n  cooldown_time: 60"))
    labels.name_models(["fast", "big"], ["openai/model-a", "openai/model-b", "openai/model-c"])
    try:
        a.script(Reply.error(503))
        while not a.chat_requests():
            await provider.acomplete(USER, model="fast")
    finally:
        labels.name_models([], [])
    until = value("hive_mcp_deployment_cooldown_until_timestamp_seconds", group="fast", deployment="openai/model-a")
    assert time.time() + 50 < until <= time.time() + 60
