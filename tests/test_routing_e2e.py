"""A models config end to end: `python -m hive_mcp --config` over stdio with the SDK's real client, and
cooldowns shared through a real valkey-server by two hive-mcp processes (and Redis stopped mid-run)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from tests.servers import Session
from tests.clients import text_of
from harness.upstream import Reply, Upstream
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary
from tests.stdio_servers import DEP_KEY, env_for, stdio_session


@pytest.fixture
def pair() -> Iterator[tuple[Upstream, Upstream]]:
    """Deployment a always answers 429 (Retry-After 30); deployment b answers."""
    a = Upstream(Reply.error(429, headers={"retry-after": "30"})).start()
    b = Upstream(Reply.text("from b")).start()
    yield a, b
    a.stop()
    b.stop()


def write_config(
    path: Path, a: Upstream, b: Upstream, redis_port: int | None = None, strategy: str = "", cooldown_s: float = 120
) -> Path:
    redis = f"\n  redis_host: 127.0.0.1\n  redis_port: {redis_port}" if redis_port else ""
    if strategy:
        redis += f"\n  routing_strategy: {strategy}"
    path.write_text(f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/model-a, api_base: "{a.base_url}", api_key: os.environ/DEP_KEY}}
  - model_name: fast
    litellm_params: {{model: openai/model-b, api_base: "{b.base_url}", api_key: os.environ/DEP_KEY}}
router_settings:
  model_group_alias: {{quick: fast}}
  cooldown_time: {cooldown_s}{redis}
general_settings: {{master_key: sk-proxy-only}}
hive_mcp:
  log_level: INFO
""")
    return path


def complete(session: Session, model: str = "fast", **args: Any) -> Any:
    async def call(c: Any) -> Any:
        return await c.call_tool("complete", {"prompt": "hi", "model": model, **args})

    return session.run(call)


def test_config_end_to_end_over_stdio_complete_on_a_group_and_an_alias(tmp_path, pair) -> None:
    a, b = pair
    config = write_config(tmp_path / "config.yaml", a, b)
    session, errlog_path, errlog = stdio_session(config, tmp_path, "one")
    try:
        for model in ("fast", "quick"):
            result = complete(session, model)
            assert not result.is_error, text_of(result)
            assert "from b" in text_of(result)
        assert DEP_KEY not in text_of(result)
        unknown = complete(session, "gpt-4o")
        assert unknown.is_error and "fast" in text_of(unknown) and "quick" in text_of(unknown)
    finally:
        session.close()
        errlog.close()
    assert b.chat_requests()[0].headers["authorization"] == f"Bearer {DEP_KEY}"
    stderr = errlog_path.read_text()
    assert "general_settings" in stderr  # the proxy-only section, warned about once
    assert stderr.count("ignored (only the LiteLLM proxy uses them)") == 1
    assert DEP_KEY not in stderr


def test_a_proxy_config_with_an_unset_variable_and_a_wildcard_starts_and_serves(tmp_path, pair) -> None:
    a, b = pair
    config = tmp_path / "config.yaml"
    config.write_text(f"""
model_list:
  - model_name: fast
    litellm_params: {{model: openai/model-b, api_base: "{b.base_url}", api_key: os.environ/DEP_KEY}}
  - model_name: azure-gpt
    litellm_params: {{model: azure/gpt-4o, api_base: "{a.base_url}", api_key: os.environ/AZURE_API_KEY}}
  - model_name: "local/*"
    litellm_params: {{model: "openai/*", api_base: "{b.base_url}", api_key: os.environ/DEP_KEY}}
""")
    session, errlog_path, errlog = stdio_session(config, tmp_path, "proxy")

    async def calls(c: Any) -> tuple[Any, Any, Any]:
        listing = (await c.call_tool("list_models", {})).structured_content
        wild = await c.call_tool("complete", {"prompt": "hi", "model": "local/qwen3"})
        unusable = await c.call_tool("complete", {"prompt": "hi", "model": "azure-gpt"})
        return listing, wild, unusable

    try:
        listing, wild, unusable = session.run(calls)
    finally:
        session.close()
        errlog.close()
    groups = {g["name"]: g for g in listing["groups"]}
    assert [d["credentials"] for d in groups["azure-gpt"]["deployments"]] == [False]
    assert "local/*" in groups and "local/*" in listing["note"]
    assert not wild.is_error and "from b" in text_of(wild)
    assert b.chat_requests()[-1].body["model"] == "qwen3"
    assert unusable.is_error and "AZURE_API_KEY" in text_of(unusable)
    assert a.chat_requests() == []
    stderr = errlog_path.read_text()
    assert stderr.count("AZURE_API_KEY") >= 1 and stderr.count("skipped until their variables are set") == 1
    assert DEP_KEY not in stderr


def test_a_bad_config_refuses_to_start_with_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - litellm_params: {model: openai/x}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hive_mcp", "--config", str(bad)], env=env_for(tmp_path / "d"), cwd=tmp_path,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "model_name" in lines[0], proc.stderr


def _cool_down_a(session: Session, a: Upstream) -> None:
    """Call until one call went to deployment a first (its 429 puts it in cooldown)."""
    for _ in range(40):
        result = complete(session)
        assert not result.is_error, text_of(result)
        if a.chat_requests():
            return
    pytest.fail("no call went to deployment a")


def test_redis_shares_a_cooldown_between_two_processes(tmp_path, pair) -> None:
    a, b = pair
    with ValkeyProcess(valkey_binary()) as valkey:
        config = write_config(tmp_path / "config.yaml", a, b, redis_port=valkey.port)
        first, _, log1 = stdio_session(config, tmp_path, "first")
        try:
            _cool_down_a(first, a)
        finally:
            first.close()
            log1.close()
        assert len(a.chat_requests()) == 1
        second, _, log2 = stdio_session(config, tmp_path, "second")
        try:
            for _ in range(10):
                assert "from b" in text_of(complete(second))
        finally:
            second.close()
            log2.close()
    assert len(a.chat_requests()) == 1  # the second process never sent to the deployment the first cooled


def test_redis_stopped_mid_run_does_not_fail_calls_and_sharing_resumes(tmp_path, pair) -> None:
    a, b = pair
    valkey = ValkeyProcess(valkey_binary())
    valkey.start()
    try:
        # Usage-based routing: every success writes its counters to Redis, which shows when writes resume.
        config = write_config(tmp_path / "config.yaml", a, b, redis_port=valkey.port, strategy="usage-based-routing-v2")
        session, errlog_path, errlog = stdio_session(config, tmp_path, "solo")
        try:
            assert "from b" in text_of(complete(session))
            valkey.stop()
            _cool_down_a(session, a)  # cooled in this process only: Redis is away
            before = len(a.chat_requests())
            for _ in range(5):
                result = complete(session)
                assert not result.is_error and "from b" in text_of(result)
            assert len(a.chat_requests()) == before
            valkey.start()
            store = redis.Redis(port=valkey.port)
            deadline = time.monotonic() + 5  # litellm's circuit breaker lets Redis in again within 5 s
            while not store.keys("*:rpm:*"):
                assert not complete(session).is_error
                if time.monotonic() > deadline:
                    pytest.fail("no usage counter reached Redis after it came back")
        finally:
            session.close()
            errlog.close()
        stderr = errlog_path.read_text()
        assert "Traceback" not in stderr
        assert stderr.count("Redis did not answer: routing") == 1, stderr
        # A cooldown reaching another process once Redis is back is the next test's: the first cooldown may be
        # set while litellm's breaker for cooldowns is still shut, so that test sets one each second.
    finally:
        valkey.stop()


BACK_S = 5.0
"""Cooldown sharing resumes within this of Redis answering again."""


def cooling_in(session: Session, model: str) -> bool:
    """Whether `list_models` through `session` shows the deployment of `model` in group `fast` cooling down."""
    listing = session.run(lambda c: c.call_tool("list_models", {})).structured_content
    [fast] = [g for g in listing["groups"] if g["name"] == "fast"]
    [deployment] = [d for d in fast["deployments"] if d["model"] == model]
    return not deployment["healthy"]


def test_cooldown_sharing_between_two_instances_resumes_within_5_s_of_redis_returning(tmp_path) -> None:
    """Two hive-mcp processes on one Valkey, which stops while both route (each meets the failure, so
    litellm's circuit breaker opens in each). Once Valkey answers again, deployment a starts refusing (429):
    instance A puts it in cooldown, and instance B, which sends it nothing meanwhile (it only lists), shows
    it cooling down within 5 s: only Redis can have told it. A cooldown of 1 s has A try a again each
    second, so a cooldown A set while its breaker was still open (not shared) is followed by another."""
    refusing = threading.Event()
    a = Upstream(Reply.text("from a"), reply_for=lambda _: Reply.error(429) if refusing.is_set() else None).start()
    b = Upstream(Reply.text("from b")).start()
    valkey = ValkeyProcess(valkey_binary())
    valkey.start()
    opened: list[tuple[Session, IO[str]]] = []
    try:
        config = write_config(tmp_path / "config.yaml", a, b, redis_port=valkey.port, cooldown_s=1)
        for name in ("first", "second"):
            session, errlog_path, errlog = stdio_session(config, tmp_path, name)
            opened.append((session, errlog))
            assert not complete(session).is_error  # the Router is attached, on Redis
        (first, _), (second, _) = opened
        valkey.stop()
        for session, errlog in opened:  # each process meets Redis away (its one warning says so)
            deadline = time.monotonic() + BACK_S
            while "Redis did not answer: routing" not in Path(errlog.name).read_text():
                assert not complete(session).is_error and not cooling_in(session, "model-a")
                assert time.monotonic() < deadline, Path(errlog.name).read_text()
        valkey.start()
        back_at = time.monotonic()
        assert not cooling_in(second, "model-a")
        refusing.set()
        while not cooling_in(second, "model-a"):
            result = complete(first)  # a refuses and is cooled down by A; b answers
            assert not result.is_error and "from b" in text_of(result), text_of(result)
            waited = time.monotonic() - back_at
            assert waited < BACK_S, f"B saw no cooldown of a within {BACK_S} s of Redis answering again"
        assert a.chat_requests() and refusing.is_set()
    finally:
        for session, errlog in opened:
            session.close()
            errlog.close()
        valkey.stop()
        a.stop()
        b.stop()
    for _, errlog in opened:
        assert "Traceback" not in Path(errlog.name).read_text()
