"""`--workers N`: several processes on one port, stateless streamable HTTP, both protocol eras, SIGTERM drain.

Requests reach the worker a test means through `tests.steering`: a new
connection per request, and the server run by `tests.worker_pid`, whose workers
name themselves in every response and answer a request naming another at once.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from hive_mcp.cli import main
from hive_mcp.scaling import max_workers
from tests.clients import hear
from tests.servers import TOOLS, HttpServer, Session, authed_target, dump_id_in, exited_cleanly, wait_logged
from tests.clients import text_of
from tests import worker_pid
from tests.steering import Seen, Steer, steered_target, worker_pids
from harness.upstream import RecordedRequest, Reply, Upstream
from tests.worker_servers import run_until_exit, two_worker_server, wait_loaded, workers_env

STREAMED = ["one, ", "two, ", "three"]


def _reply(request: RecordedRequest) -> Reply:
    if "please fail" in json.dumps(request.messages):
        return Reply.error(500, "upstream exploded")
    if isinstance(request.body, dict) and request.body.get("stream"):
        return Reply.stream(STREAMED)
    return Reply.text("a whole reply")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream(reply_for=_reply) as up:
        yield up


@pytest.fixture(scope="module")
def two_workers(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    workdir = tmp_path_factory.mktemp("workers")
    server = two_worker_server(workers_env(upstream, workdir / "dumps"), workdir, "workers")
    try:
        server.wait_ready()
        wait_loaded(server)
        yield server
    finally:
        rc = server.terminate()
    assert rc == 0, server.stderr()


# ---------------------------------------------------------------------------
# Bad values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "-1"], {}, "--workers"),
        (["--workers", "two"], {}, "--workers"),
        ([], {"HIVE_MCP_WORKERS": "many"}, "HIVE_MCP_WORKERS"),
        (["--workers", str(max_workers() + 1)], {}, "--force"),
        (["--transport", "sse", "--workers", "2"], {}, "stateless"),
        (["--transport", "sse", "--stateless"], {}, "--stateless"),
        (["--transport", "stdio", "--workers", "2"], {}, "--transport http"),
    ],
    ids=["zero", "negative", "not-a-number", "env-not-a-number", "too-many", "sse", "sse-stateless", "stdio"],
)
def test_bad_worker_settings_are_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], names: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # no .env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    transport = [] if "--transport" in argv else ["--transport", "http"]
    assert main([*transport, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hive-mcp: error: ") and names in err, err
    assert "Traceback" not in err


def test_the_supervisor_says_who_may_call_once_and_every_worker_knows_the_callers_name(
    upstream: Upstream, tmp_path: Path
) -> None:
    token = "tok-workers-0123456789abcdef"
    env = workers_env(upstream, tmp_path / "dumps") | {"HIVE_MCP_AUTH_TOKEN": f"ops:{token}"}
    server = two_worker_server(env, tmp_path, "access")
    session: Session | None = None
    try:
        server.wait_ready()
        wait_loaded(server)
        session = Session(authed_target(server, token), "legacy")
        failed = session.run(lambda c: c.call_tool("complete", {"prompt": "please fail", "max_retries": 0}))
    finally:
        if session is not None:
            session.close()
        assert server.terminate() == 0, server.stderr()
    log = server.stderr()
    assert log.count("bearer-token authentication on (1 token)") == 1, log
    assert token not in log
    dump = json.loads((tmp_path / "dumps" / f"{dump_id_in(text_of(failed))}.json").read_text())
    assert dump["caller"] == "ops"


# ---------------------------------------------------------------------------
# Both protocol eras, their requests on different workers
# ---------------------------------------------------------------------------


def test_workers_stopped_before_their_provider_loads_exit_at_once(upstream: Upstream, tmp_path: Path) -> None:
    """SIGTERM while each worker's litellm still loads (a load that never ends here): each worker stops serving and
    leaves without waiting for the load, its exit hooks run; the server exits 0 with no traceback. A worker that
    waited for the load would never exit."""
    env = workers_env(upstream, tmp_path / "dumps") | {worker_pid.NEVER_LOADS: "1"}
    server = two_worker_server(env, tmp_path, "never-loads")
    try:
        server.wait_ready()
        wait_logged(server.stderr, "Application startup complete", 2, exited=server.proc.poll)
    finally:
        rc = server.terminate()
    log = server.stderr()
    assert rc == 0, log
    assert log.count("stopped") >= 2, log
    assert ": provider loaded" not in log and "Traceback" not in log, log


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_client_gets_the_same_results_whichever_worker_answers(two_workers: HttpServer, mode: str) -> None:
    """initialize (legacy) on one worker; tools/call, resources/read and stream_complete on the other, then back."""
    a, b = worker_pids(two_workers.stderr())
    seen = Seen()
    steer = Steer(seen)
    steer.want = a
    session = Session(steered_target(two_workers.url, steer), mode)
    try:

        async def calls(c: Client) -> None:
            for want in (b, a):
                steer.want = want
                assert {t.name for t in (await c.list_tools()).tools} >= TOOLS
                progress: list[str] = []

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        progress.append(message)

                streamed = await c.call_tool("stream_complete", {"prompt": "count"}, progress_callback=on_progress)
                assert not streamed.is_error and text_of(streamed) == "one, two, three"
                assert "three" in "".join(progress), progress  # the text came as progress notifications too
                whole = await c.call_tool("complete", {"prompt": "hi"})
                assert not whole.is_error and text_of(whole) == "a whole reply"
                index = await c.read_resource("hive://failed-requests")
                assert index.contents

        session.run(calls, timeout=120)
    finally:
        session.close()
    assert seen.pids("tools/call") == {a, b}, seen.answers
    assert seen.pids("resources/read") == {a, b}, seen.answers
    if mode == "legacy":
        assert seen.pids("initialize") == {a}, seen.answers


def test_a_dump_written_by_one_worker_is_heard_and_read_on_the_other(two_workers: HttpServer) -> None:
    """A 2026-07-28 listen stream on worker A hears of the dump worker B wrote; A reads it, and lists it."""
    a, b = worker_pids(two_workers.stderr())
    seen = Seen()
    steer = Steer(seen)
    steer.want = a
    session = Session(steered_target(two_workers.url, steer), "auto")
    try:

        async def go(c: Client) -> tuple[str, Any, Any]:
            async with c.listen(resources_list_changed=True, resource_subscriptions=["hive://failed-requests"]) as sub:
                steer.want = b
                failed = await c.call_tool("complete", {"prompt": "please fail", "max_retries": 0})
                assert failed.is_error, text_of(failed)
                await hear(sub, {"ResourcesListChanged", "hive://failed-requests"}, timeout=30)
            steer.want = a
            dump_id = dump_id_in(text_of(failed))
            one = await c.read_resource(f"hive://failed-requests/{dump_id}")
            listing = await c.call_tool("list_failed_requests", {"limit": 200})
            return dump_id, one, listing

        dump_id, one, listing = session.run(go, timeout=90)
    finally:
        session.close()
    assert seen.pids("subscriptions/listen") == {a}, seen.answers
    assert [pid for m, pid in seen.answers if m == "tools/call"][0] == b, seen.answers
    assert "upstream exploded" in one.contents[0].text
    assert dump_id in {i["id"] for i in listing.structured_content["items"]}


# ---------------------------------------------------------------------------
# SIGTERM to the parent drains every worker
# ---------------------------------------------------------------------------

CALLS = 6


def test_sigterm_lets_every_workers_calls_finish_and_exits_0(tmp_path: Path) -> None:
    held = Upstream(reply_for=lambda r: Reply.stream(["first half, ", "second half"], hold_after=1))
    with held:
        server = two_worker_server(workers_env(held, tmp_path / "dumps"), tmp_path, "drain")
        seen = Seen()
        try:
            server.wait_ready()
            wait_loaded(server)
            pids = worker_pids(server.stderr())
            steer = Steer(seen)

            async def go(c: Client) -> list[Any]:
                outcomes: list[Any] = []
                assert {t.name for t in (await c.list_tools()).tools} >= TOOLS

                async def one(started: anyio.Event) -> None:
                    async def on_progress(value: float, total: float | None, message: str | None) -> None:
                        if message:
                            started.set()

                    try:
                        outcomes.append(await c.call_tool("stream_complete", {"prompt": "go"}, progress_callback=on_progress))
                    except MCPError as exc:
                        outcomes.append(exc)

                async with anyio.create_task_group() as tg:
                    # Calls one after another, on each worker in turn, each held after its first text.
                    for i in range(CALLS):
                        steer.want = pids[i % 2]
                        started = anyio.Event()
                        tg.start_soon(one, started)
                        with anyio.fail_after(60):
                            await started.wait()  # its stream has sent its first text and is held
                    server.signal_stop()
                    held.release()
                return outcomes

            outcomes, rc = run_until_exit(server, steer, go)
        finally:
            server.terminate()
    log = exited_cleanly(server, rc)
    for outcome in outcomes:
        assert not isinstance(outcome, MCPError), outcome
        assert not outcome.is_error and text_of(outcome) == "first half, second half"
    assert len(seen.pids("tools/call")) == 2, seen.answers  # both workers had calls in flight
    assert log.count("shutting down:") == 2, log  # each worker drained



def test_a_worker_that_dies_is_replaced_its_calls_end_with_an_error_and_leave_the_in_flight_gauge(
    tmp_path: Path,
) -> None:
    """SIGKILL to a worker with a stream in flight: that call fails at once (no hang); a new worker takes its place,
    and the killed worker's call no longer counts as in flight (it ran no exit hook to say so)."""
    held = Upstream(reply_for=lambda r: Reply.stream(["never ", "finished"], hold_after=1) if r.body.get("stream")
                    else Reply.text("all good"))
    with held:
        server = two_worker_server(workers_env(held, tmp_path / "dumps"), tmp_path, "dies")
        session: Session | None = None
        try:
            server.wait_ready()
            wait_loaded(server)
            victim, survivor = worker_pids(server.stderr())
            steer = Steer(Seen())
            steer.want = victim
            session = Session(steered_target(server.url, steer), "legacy")

            async def go(c: Client) -> Any:
                started = anyio.Event()

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    if message:
                        started.set()

                outcome: list[Any] = []

                async def one() -> None:
                    try:
                        outcome.append(await c.call_tool("stream_complete", {"prompt": "x"}, progress_callback=on_progress))
                    except Exception as exc:  # noqa: BLE001 - what the client sees is the point
                        outcome.append(exc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(one)
                    with anyio.fail_after(60):
                        await started.wait()
                    os.kill(victim, signal.SIGKILL)
                return outcome[0]

            outcome = session.run(go, timeout=60)  # bounded: a hang fails here
            wait_loaded(server, workers=3)  # the replacement loaded its provider
            steer.want = survivor
            after = session.run(lambda c: c.call_tool("complete", {"prompt": "still there?"}))
            scraped = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=30)
        finally:
            server.terminate()
            if session is not None:
                session.close()
    assert isinstance(outcome, Exception) or outcome.is_error, outcome
    assert not after.is_error and text_of(after) == "all good"
    assert "died" in server.stderr()
    assert scraped.status_code == 200, scraped.text
    in_flight = [line for line in scraped.text.splitlines() if line.startswith("hive_mcp_calls_in_flight{")]
    assert in_flight and all(line.endswith(" 0.0") for line in in_flight), in_flight
    assert "hive_mcp_tasks_open 0.0" in scraped.text.splitlines(), scraped.text


LOAD = 500


def _load_reply(request: RecordedRequest) -> Reply:
    faulty = "faulty" in json.dumps(request.messages)
    return Reply.stream(["al", "pha ", "beta"], drop_after=1 if faulty else None)


def test_500_streams_one_in_ten_faulty_over_2_workers(tmp_path: Path) -> None:
    """The hardening load against two workers: every call one outcome, no text lost or doubled, both workers used."""
    with Upstream(reply_for=_load_reply) as upstream:
        env = workers_env(upstream, tmp_path / "dumps")
        env["HIVE_MCP_MAX_IN_FLIGHT"] = str(LOAD)
        server = two_worker_server(env, tmp_path, "load")
        seen = Seen()
        session: Session | None = None
        try:
            server.wait_ready()
            wait_loaded(server)
            steer = Steer(seen)
            session = Session(steered_target(server.url, steer), "legacy")

            async def go(c: Client) -> list[tuple[int, Any, str]]:
                outcomes: list[tuple[int, Any, str]] = []

                async def one(i: int) -> None:
                    texts: list[str] = []

                    async def on_progress(value: float, total: float | None, message: str | None) -> None:
                        if message:
                            texts.append(message)

                    prompt = f"faulty {i}" if i % 10 == 0 else f"fine {i}"
                    result = await c.call_tool("stream_complete", {"prompt": prompt, "max_retries": 0},
                                               progress_callback=on_progress)  # fmt: skip
                    outcomes.append((i, result, "".join(texts)))

                async with anyio.create_task_group() as tg:
                    for i in range(LOAD):
                        tg.start_soon(one, i)
                return outcomes

            outcomes = session.run(go, timeout=240)
        finally:
            server.terminate()
            if session is not None:
                session.close()
    assert sorted(i for i, _, _ in outcomes) == list(range(LOAD))  # one outcome each
    for i, result, progress in outcomes:
        if i % 10 == 0:
            assert result.is_error, text_of(result)
        else:
            assert not result.is_error, text_of(result)
            assert text_of(result) == "alpha beta" and progress == "alpha beta", (text_of(result), progress)
    assert len(seen.pids("tools/call")) == 2, seen.answers[:5]
    assert "Traceback" not in server.stderr()


# ---------------------------------------------------------------------------
# Limits litellm's Router keeps in each process
# ---------------------------------------------------------------------------

LIMITED = """model_list:
  - model_name: fast
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}", api_key: os.environ/HIVE_MCP_API_KEY, rpm: 60}}
  - model_name: slow
    litellm_params: {{model: openai/gpt-4o, api_base: "{base}", api_key: os.environ/HIVE_MCP_API_KEY}}
{router}"""


USAGE = "routing_strategy: usage-based-routing-v2"


@pytest.mark.parametrize(
    ("router", "warned"),
    [(f"router_settings: {{{USAGE}}}", True), (f"router_settings: {{{USAGE}, redis_url: 'redis://127.0.0.1:1'}}", False),
     ("", False)],
    ids=["usage-no-redis", "usage-router-redis", "rpm-as-weight"],
)
def test_rpm_limits_kept_by_each_worker_are_said_once_at_start(
    upstream: Upstream, tmp_path: Path, router: str, warned: bool
) -> None:
    """A deployment's `rpm` counted by each worker's own Router (usage-based routing, no Redis in
    `router_settings`): two workers let through twice the limit, so the supervisor says so once, naming the group,
    the workers and the way to share it. A Router with Redis shares the count, and the default strategy takes
    `rpm` as a weight: neither is warned about."""
    config = tmp_path / "config.yaml"
    config.write_text(LIMITED.format(base=upstream.base_url, router=router))
    env = workers_env(upstream, tmp_path / "dumps") | {"HIVE_MCP_CONFIG": str(config)}
    env.pop("HIVE_MCP_MODEL", None)
    server = two_worker_server(env, tmp_path, "limits")
    try:
        server.wait_loaded(processes=2)  # a worker stopped while litellm loads waits for the load at its exit
    finally:
        assert server.terminate() == 0, server.stderr()
    lines = [ln for ln in server.stderr().splitlines() if "per worker" in ln]
    if warned:
        assert len(lines) == 1, server.stderr()
        assert all(word in lines[0] for word in ("fast", "rpm", "2 workers", "router_settings", "redis")), lines
        assert "slow" not in lines[0]
    else:
        assert lines == [], lines
