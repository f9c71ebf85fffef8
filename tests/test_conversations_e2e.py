"""Conversations through `python -m hive_mcp` as a subprocess: token isolation, restart survival, the CLI.

The store is the default one, SQLite in the hive home ($HIVE_HOME); the server
runs over streamable HTTP and the SDK's real Client talks to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.upstream import Reply, Upstream
from tests.clients import text_of
from tests.servers import HttpServer, Session, authed_target, server_env

TOKENS = ("tok-alpha-0123456789abcdef", "tok-bravo-0123456789abcdef")


def env_for(upstream: Upstream, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = server_env(upstream, tmp_path / "dumps", api_key=True)
    env.update(HIVE_HOME=str(tmp_path / "home"), **extra)
    return env


def complete(session: Session, **arguments: Any) -> Any:
    return session.run(lambda c: c.call_tool("complete", arguments))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_conversation_belongs_to_the_token_that_made_it(upstream: Upstream, tmp_path: Path, mode: str) -> None:
    server = HttpServer("http", env_for(upstream, tmp_path, HIVE_MCP_AUTH_TOKEN=",".join(TOKENS)), tmp_path, "tokens")
    alice = bob = None
    try:
        server.wait_loaded()  # the calls are bounded as calls, not as litellm's import
        alice = Session(authed_target(server, TOKENS[0]), mode)
        bob = Session(authed_target(server, TOKENS[1]), mode)
        cid = complete(alice, prompt="a secret plan").structured_content["conversation_id"]
        stolen = complete(bob, prompt="tell me", conversation_id=cid)
        bob_sees = bob.run(lambda c: c.call_tool("list_conversations", {})).structured_content
        with pytest.raises(Exception, match="unknown conversation"):
            bob.run(lambda c: c.read_resource(f"hive://conversations/{cid}"))
        alice_sees = alice.run(lambda c: c.call_tool("list_conversations", {})).structured_content
        mine = complete(alice, prompt="go on", conversation_id=cid)
    finally:
        for session in (alice, bob):
            if session is not None:
                session.close()
        assert server.terminate() == 0, server.stderr()
    assert stolen.is_error and text_of(stolen) == f"conversation_id: unknown conversation {cid}"
    assert bob_sees["items"] == [] and [i["id"] for i in alice_sees["items"]] == [cid]
    assert not mine.is_error and mine.structured_content["conversation_id"] == cid
    assert len(upstream.chat_requests()) == 2  # bob's attempt never reached the upstream
    assert upstream.chat_requests()[1].messages[-3:] == [
        {"role": "user", "content": "a secret plan"}, {"role": "assistant", "content": "default reply"},
        {"role": "user", "content": "go on"},
    ]  # fmt: skip
    for token in TOKENS:
        assert token not in server.stderr()


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive_mcp", "conversations", *args], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_conversations_survive_a_restart_and_the_cli_sees_them(upstream: Upstream, tmp_path: Path) -> None:
    upstream.script(Reply.text("First answer."), Reply.text("Second answer."))
    first = HttpServer("http", env_for(upstream, tmp_path), tmp_path, "before")
    session = None
    try:
        first.wait_loaded()  # the calls are bounded as calls, not as litellm's import
        session = Session(lambda: first.url, "auto")
        cid = complete(session, prompt="Remember 42.", system="Be exact.").structured_content["conversation_id"]
    finally:
        if session is not None:
            session.close()
        assert first.terminate() == 0, first.stderr()

    second = HttpServer("http", env_for(upstream, tmp_path), tmp_path, "after")
    session = None
    try:
        second.wait_loaded()
        session = Session(lambda: second.url, "legacy")
        again = complete(session, prompt="What number?", conversation_id=cid)
    finally:
        if session is not None:
            session.close()
        assert second.terminate() == 0, second.stderr()
    assert not again.is_error, text_of(again)
    assert upstream.chat_requests()[1].messages == [
        {"role": "system", "content": "Be exact."}, {"role": "user", "content": "Remember 42."},
        {"role": "assistant", "content": "First answer."}, {"role": "user", "content": "What number?"},
    ]  # fmt: skip
    db = tmp_path / "home" / "hive-mcp.sqlite3"
    assert db.stat().st_mode & 0o777 == 0o600 and db.parent.stat().st_mode & 0o777 == 0o700

    env = env_for(upstream, tmp_path)
    listed = cli(env, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert cid in listed.stdout and "gpt-4o-mini" in listed.stdout and "local" in listed.stdout
    shown = cli(env, tmp_path, "show", cid)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["turns"] == 2 and [m["role"] for m in document["messages"]] == [
        "system", "user", "assistant", "user", "assistant",
    ]  # fmt: skip
    deleted = cli(env, tmp_path, "delete", cid)
    assert deleted.returncode == 0 and cid in deleted.stdout
    gone = cli(env, tmp_path, "show", cid)
    assert gone.returncode == 2 and gone.stderr.strip() == f"hive-mcp: error: conversation_id: unknown conversation {cid}"
    assert cli(env, tmp_path, "show", "nope").returncode == 2


def test_a_bad_state_url_is_a_one_line_settings_error(upstream: Upstream, tmp_path: Path) -> None:
    env = env_for(upstream, tmp_path, HIVE_MCP_STATE_URL="http://cache:6379")
    done = subprocess.run(
        [sys.executable, "-m", "hive_mcp"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hive-mcp: error: HIVE_MCP_STATE_URL: http:// is not a state store scheme; expected redis://, rediss:// "
        "or unix://"
    ]
