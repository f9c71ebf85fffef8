"""Callers sealed off from each other, through `python -m hive_mcp` as a subprocess.

Three named tokens: alice and bob are callers, root an admin (`HIVE_MCP_ADMINS`).
Alice's call fails and leaves a dump; every path that can show a dump or spend
(the MCP tools and resources, a subscription, the `dashboard` tool, the
dashboard's JSON and its delete) is asked by bob, who must see nothing of it:
her dump's id answers exactly as an unknown id does. Served over streamable HTTP
(stateful, stateless, two workers) and legacy SSE; the SDK's real client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.worker_pid import MODULE as WORKER_PID, WANT_HEADER, WORKER_HEADER
from tests.worker_pid import env as worker_pid_env
from harness.processes import child_env, free_port
from tests.servers import STARTUP_S, HttpServer, Session, authed_target, bearer, dump_id_in, server_env
from tests.clients import text_of
from tests.steering import TRIES, worker_pids
from harness.upstream import Reply, Upstream

ALICE = "tok-alice-0123456789abcdef"
BOB = "tok-bob-0123456789abcdef"
ROOT = "tok-root-0123456789abcdef"
TOKENS = {"alice": ALICE, "bob": BOB, "root": ROOT}


@pytest.fixture(
    scope="module",
    params=[("http", ()), ("http", ("--stateless",)), ("http", ("--workers", "2")), ("sse", ())],
    ids=["streamable", "stateless", "workers", "sse"],
)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The server with alice's failed call and dump, bob's and alice's successful calls (spend for both)."""
    transport, args = request.param
    workdir = tmp_path_factory.mktemp("callers")
    with Upstream() as upstream:
        env = worker_pid_env(server_env(upstream, workdir / "dumps", api_key=True)) | {
            "HIVE_HOME": str(workdir / "home"),
            "HIVE_MCP_AUTH_TOKEN": ",".join(f"{name}:{token}" for name, token in TOKENS.items()),
            "HIVE_MCP_ADMINS": "root",
        }
        # With workers: a request may ask for the worker it means.
        server = HttpServer(transport, env, workdir, "callers", args=args, module=WORKER_PID)
        sessions: dict[str, Session] = {}
        try:
            server.wait_loaded(2 if "--workers" in args else 1)  # the calls below are bounded as calls alone
            for name, token in TOKENS.items():
                sessions[name] = Session(authed_target(server, token), "legacy")
            ok = sessions["alice"].run(lambda c: c.call_tool("complete", {"prompt": "alice's plan"}))
            assert not ok.is_error, text_of(ok)
            conversation = ok.structured_content["conversation_id"]
            upstream.script(Reply.error(400, "scripted refusal"))
            failed = sessions["alice"].run(lambda c: c.call_tool("complete", {"prompt": "alice's secret"}))
            assert failed.is_error, text_of(failed)
            ok = sessions["bob"].run(lambda c: c.call_tool("complete", {"prompt": "bob's question"}))
            assert not ok.is_error, text_of(ok)
            dump_id = dump_id_in(text_of(failed))
            yield {
                "server": server, "sessions": sessions, "dump_id": dump_id,
                "uris": {"dump": f"hive://failed-requests/{dump_id}", "conversation": f"hive://conversations/{conversation}"},
            }  # fmt: skip
        finally:
            for session in sessions.values():
                session.close()
            assert server.terminate() == 0, server.stderr()


def unknown_like(dump_id: str) -> str:
    """A well-formed id of the same shape that names no dump."""
    return dump_id[:-8] + ("00000000" if not dump_id.endswith("00000000") else "ffffffff")


def listed(session: Session) -> list[str]:
    result = session.run(lambda c: c.call_tool("list_failed_requests", {}))
    return [item["id"] for item in result.structured_content["items"]]


def resource_ids(session: Session) -> list[str]:
    result = session.run(lambda c: c.list_resources())
    return [str(r.uri) for r in result.resources if str(r.uri).startswith("hive://failed-requests/")]


def index_ids(session: Session) -> list[str]:
    result = session.run(lambda c: c.read_resource("hive://failed-requests"))
    return [item["id"] for item in json.loads(result.contents[0].text)["items"]]


def read_error(session: Session, dump_id: str) -> str:
    with pytest.raises(Exception) as err:  # noqa: PT011 - the SDK's error, its message compared below
        session.run(lambda c: c.read_resource(f"hive://failed-requests/{dump_id}"))
    return str(err.value).replace(dump_id, "<id>")


def dashboard_tool(session: Session, **arguments: Any) -> Any:
    return session.run(lambda c: c.call_tool("dashboard", arguments))


def web(server: HttpServer, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.base_url + path, headers=bearer(TOKENS[who]), timeout=30, **kwargs)


def test_a_dump_is_listed_only_to_its_caller_and_admins(served: dict[str, Any]) -> None:
    sessions, dump_id = served["sessions"], served["dump_id"]
    uri = f"hive://failed-requests/{dump_id}"
    for who, sees in (("alice", True), ("bob", False), ("root", True)):
        session = sessions[who]
        assert (dump_id in listed(session)) is sees, who
        assert (uri in resource_ids(session)) is sees, who
        assert (dump_id in index_ids(session)) is sees, who
        newest = dashboard_tool(session, view="failures").structured_content["failures"]["newest"]
        assert (dump_id in [row["id"] for row in newest]) is sees, who


def test_a_conversation_is_browsed_by_its_caller_and_admins_and_continued_by_its_caller_only(
    served: dict[str, Any],
) -> None:
    sessions, uri = served["sessions"], served["uris"]["conversation"]
    conversation_id = uri.rsplit("/", 1)[1]
    for who, sees in (("alice", True), ("bob", False), ("root", True)):
        session = sessions[who]
        items = session.run(lambda c: c.call_tool("list_conversations", {})).structured_content["items"]
        owners = {item["id"]: item["owner"] for item in items}
        assert owners.get(conversation_id) == ("alice" if sees else None), who
        index = json.loads(session.run(lambda c: c.read_resource("hive://conversations")).contents[0].text)
        assert (conversation_id in [item["id"] for item in index["items"]]) is sees, who
        if sees:
            thread = json.loads(session.run(lambda c: c.read_resource(uri)).contents[0].text)
            assert thread["messages"][0]["content"] == "alice's plan", who
        else:
            with pytest.raises(Exception, match="unknown conversation"):  # noqa: PT011 - the SDK's error
                session.run(lambda c: c.read_resource(uri))
    # Browsing is not writing: a turn on alice's thread stays hers to add.
    continued = sessions["root"].run(
        lambda c: c.call_tool("complete", {"prompt": "and?", "conversation_id": conversation_id})
    )
    assert continued.is_error and text_of(continued) == f"conversation_id: unknown conversation {conversation_id}"


def test_another_callers_dump_reads_exactly_as_an_unknown_one(served: dict[str, Any]) -> None:
    sessions, dump_id = served["sessions"], served["dump_id"]
    bob, alice = sessions["bob"], sessions["alice"]
    assert read_error(bob, dump_id) == read_error(bob, unknown_like(dump_id))
    assert "alice's secret" in alice.run(lambda c: c.read_resource(f"hive://failed-requests/{dump_id}")).contents[0].text
    assert "alice's secret" in sessions["root"].run(
        lambda c: c.read_resource(f"hive://failed-requests/{dump_id}")
    ).contents[0].text
    stolen, unknown = (dashboard_tool(bob, view="dump", id=i) for i in (dump_id, unknown_like(dump_id)))
    assert stolen.is_error and text_of(stolen).replace(dump_id, "<id>") == text_of(unknown).replace(
        unknown_like(dump_id), "<id>"
    )
    assert "alice's secret" in json.dumps(dashboard_tool(alice, view="dump", id=dump_id).structured_content)


@pytest.mark.parametrize("kind", ["dump", "conversation"])
def test_another_callers_dump_or_conversation_cannot_be_subscribed_to(served: dict[str, Any], kind: str) -> None:
    sessions, uri = served["sessions"], served["uris"][kind]
    with pytest.raises(Exception, match="Resource not found"):
        sessions["bob"].run(lambda c: c.subscribe_resource(uri))
    sessions["alice"].run(lambda c: c.subscribe_resource(uri))


@pytest.mark.parametrize("kind", ["dump", "conversation"])
def test_another_callers_dump_or_conversation_cannot_be_listened_to(served: dict[str, Any], kind: str) -> None:
    """2026-07-28's `subscriptions/listen` names resource URIs up front: another caller's are not found."""
    server, uri = served["server"], served["uris"][kind]
    if server.transport == "sse":
        pytest.skip("legacy SSE speaks only the 2025-11-25 protocol: no subscriptions/listen")

    async def listen(c: Any) -> bool:
        async with c.listen(resource_subscriptions=[uri]):
            return True

    sessions = {who: Session(authed_target(server, TOKENS[who]), "auto") for who in ("alice", "bob")}
    try:
        with pytest.raises(Exception, match="Resource not found"):
            sessions["bob"].run(listen)
        assert sessions["alice"].run(listen) is True
    finally:
        for session in sessions.values():
            session.close()


def test_the_dashboard_over_http_shows_and_deletes_only_the_callers_own(served: dict[str, Any]) -> None:
    server, dump_id = served["server"], served["dump_id"]
    stolen = web(server, "bob", "GET", "/dashboard/data", params={"view": "dump", "id": dump_id})
    unknown = web(server, "bob", "GET", "/dashboard/data", params={"view": "dump", "id": unknown_like(dump_id)})
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json()["error"].replace(dump_id, "<id>") == unknown.json()["error"].replace(unknown_like(dump_id), "<id>")
    newest = web(server, "bob", "GET", "/dashboard/data", params={"view": "failures"}).json()["failures"]["newest"]
    assert dump_id not in [row["id"] for row in newest]
    assert web(server, "alice", "GET", "/dashboard/data", params={"view": "dump", "id": dump_id}).status_code == 200

    path = f"/dashboard/dumps/{dump_id}/delete"
    refused = web(server, "bob", "POST", path, data={"confirm": dump_id})
    assert refused.status_code == 404, refused.text
    assert web(server, "root", "GET", "/dashboard/data", params={"view": "dump", "id": dump_id}).status_code == 200


def test_spend_on_the_dashboard_is_scoped_like_hive_usage(served: dict[str, Any]) -> None:
    server, sessions = served["server"], served["sessions"]
    for who in ("alice", "bob"):
        usage = json.loads(sessions[who].run(lambda c: c.read_resource("hive://usage")).contents[0].text)
        spend = web(server, who, "GET", "/dashboard/data", params={"view": "spend"}).json()["spend"]
        assert spend["caller"] == usage["caller"] == who
        assert set(spend["today"]["by_caller"]) == set(usage["today"]["by_caller"]) == {who}
        tool = dashboard_tool(sessions[who], view="spend").structured_content["spend"]
        assert set(tool["today"]["by_caller"]) == {who}
    everyone = web(server, "root", "GET", "/dashboard/data", params={"view": "spend"}).json()["spend"]
    assert everyone["caller"] is None and set(everyone["today"]["by_caller"]) == {"alice", "bob"}


def sign_in(server: HttpServer, token: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/dashboard/login", data={"token": token}, headers={"origin": server.base_url}, timeout=30
    )


def on_each_worker(server: HttpServer, method: str, path: str, **kwargs: Any) -> list[httpx.Response]:
    """The request sent to every worker in turn (once without workers), each time on a new connection."""
    answers = []
    for pid in worker_pids(server.stderr()) or [None]:
        want = {WANT_HEADER.decode(): str(pid)} if pid else {}
        for _ in range(TRIES):
            r = httpx.request(method, server.base_url + path, headers=want, timeout=30, **kwargs)
            if pid is None or r.status_code != 503:  # 503: another worker took it; ask again
                break
        assert pid is None or r.headers.get(WORKER_HEADER.decode()) == str(pid), r.headers
        answers.append(r)
    return answers


def as_browser(server: HttpServer, cookie: str, path: str, **params: str) -> list[httpx.Response]:
    return on_each_worker(server, "GET", path, params=params, cookies={"hive_dashboard": cookie})


def test_a_dashboard_session_is_its_callers_own_and_ends_at_sign_out(served: dict[str, Any]) -> None:
    server, dump_id = served["server"], served["dump_id"]
    n = len(worker_pids(server.stderr())) or 1
    signed_in = sign_in(server, BOB)
    assert signed_in.status_code == 303, signed_in.text
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in signed_in.headers["set-cookie"].split(";")}
    assert 0 < int(attrs["max-age"].split("=")[1]) <= 12 * 3600
    cookie = signed_in.cookies["hive_dashboard"]
    # With two workers, the session one signed in to holds on the other too.
    assert [r.status_code for r in as_browser(server, cookie, "/dashboard/data", view="dump", id=dump_id)] == [404] * n
    assert [r.json()["spend"]["caller"] for r in as_browser(server, cookie, "/dashboard/data", view="spend")] == ["bob"] * n
    for r in as_browser(server, cookie, "/dashboard/data", view="failures"):
        assert dump_id not in [row["id"] for row in r.json()["failures"]["newest"]]
    alice = sign_in(server, ALICE).cookies["hive_dashboard"]
    assert [r.status_code for r in as_browser(server, alice, "/dashboard/data", view="dump", id=dump_id)] == [200] * n

    out = httpx.post(
        server.base_url + "/dashboard/logout", cookies={"hive_dashboard": cookie},
        headers={"origin": server.base_url}, timeout=30,
    )  # fmt: skip
    assert out.status_code == 303
    assert [r.status_code for r in as_browser(server, cookie, "/dashboard/data", view="spend")] == [401] * n
    assert [r.status_code for r in as_browser(server, alice, "/dashboard/data", view="spend")] == [200] * n  # hers goes on


def test_the_owner_deletes_their_dump_and_it_is_gone_for_everyone(served: dict[str, Any]) -> None:
    server, sessions, dump_id = served["server"], served["sessions"], served["dump_id"]
    deleted = web(server, "alice", "POST", f"/dashboard/dumps/{dump_id}/delete", data={"confirm": dump_id})
    assert deleted.status_code == 200, deleted.text
    assert dump_id not in listed(sessions["root"])


@pytest.mark.parametrize("where", ["env", "file"])
def test_a_token_named_local_is_refused_at_start_up_in_one_line(where: str, tmp_path: Path) -> None:
    """`local` is the stdio user, who sees everyone's dumps and spend: no token may go by that name."""
    token = "tok-local-0123456789abcdef"
    env = child_env(HIVE_HOME=str(tmp_path / "home"), HIVE_MCP_DUMP_DIR=str(tmp_path / "dumps"))
    if where == "env":
        env["HIVE_MCP_AUTH_TOKEN"] = f"alice:{ALICE},local:{token}"
    else:
        (tmp_path / "tokens").write_text(f"alice:{ALICE}\nlocal:{token}\n")
        env["HIVE_MCP_AUTH_TOKEN_FILE"] = str(tmp_path / "tokens")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hive_mcp", "--transport", "http", "--port", str(free_port())],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=STARTUP_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the server started with a token named 'local'")
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and err.startswith("hive-mcp: error: "), err
    assert "'local' is reserved" in err and token not in err


def test_a_callers_usage_lists_every_budget_that_applies_to_it(tmp_path: Path) -> None:
    """The overall and model-group budgets can refuse bob's call, so bob's hive://usage shows them;
    alice's own budget is hers alone."""
    with Upstream() as upstream:
        env = server_env(upstream, tmp_path / "dumps", api_key=True) | {
            "HIVE_HOME": str(tmp_path / "home"),
            "HIVE_MCP_AUTH_TOKEN": f"alice:{ALICE},bob:{BOB}",
            "HIVE_MCP_BUDGETS": json.dumps(
                {"callers": {"alice": {"day": 5}}, "models": {"openai/gpt-4o-mini": {"day": 0.000001}}}
            ),
            "HIVE_MCP_BUDGET_USD_MONTH": "50",
        }
        server = HttpServer("http", env, tmp_path, "budgets")
        bob = None
        try:
            server.wait_loaded()  # the calls below are bounded as calls, not as litellm's import too
            bob = Session(authed_target(server, BOB), "legacy")
            bob.run(lambda c: c.call_tool("complete", {"prompt": "spend a little"}))
            refused = bob.run(lambda c: c.call_tool("complete", {"prompt": "and more"}))
            usage = json.loads(bob.run(lambda c: c.read_resource("hive://usage")).contents[0].text)
        finally:
            if bob is not None:
                bob.close()
            assert server.terminate() == 0, server.stderr()
    assert refused.is_error and "budget" in text_of(refused), text_of(refused)
    assert {b["budget"] for b in usage["budgets"]} == {"all:month", "model:openai/gpt-4o-mini:day"}
