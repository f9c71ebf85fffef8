"""Every form a secret is given in stays out of what leaves the server, against `python -m hive_mcp` as a subprocess.

The forms: the token part of a `name:token` entry in HIVE_MCP_AUTH_TOKEN and in the token
file, and every query value of the configured base URL; and a base URL's userinfo. The places: the
log (at DEBUG), a failure dump (read over MCP and on the dashboard), a conversation, and
an error result. A prompt quotes every secret; the upstream echoes it in its error. And the
API key, which the upstream echoes percent-encoded as encoders other than Python's write it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from mcp import Client

from tests.servers import HttpServer, Session, authed_target, bearer, dump_id_in, server_env
from tests.clients import text_of
from harness.upstream import RecordedRequest, Reply, Upstream

ALICE = "tok-alice-from-env-0123456789"
BOB = "tok-bob-from-file-0123456789"
QUERY = {  # every query value of the base URL is a secret, whatever its name
    "api-key": "qv-api-key-0123456789", "key": "qv-key-0123456789", "api_key": "qv-api_key-0123456789",
    "code": "qv-code-0123456789", "sig": "qv-sig-0123456789", "token": "qv-token-0123456789",
    "access_token": "qv-access-0123456789", "tenant": "qv-tenant-0123456789",
}  # fmt: skip
SECRETS = {"alice's token": ALICE, "bob's token": BOB, **QUERY}
PASSWORD = "url-password-0123456789"
URL_USER = "url-user-0123456789"
QUOTED = "quoting " + " ".join(SECRETS.values())
IO_S = 15.0
SPECIAL_KEY = "audit/Secret+Key-0123456789=~"


def escaped_echoes(key: str) -> dict[str, str]:
    """`key` percent-encoded as other encoders write it: lower-case hex (.NET's HttpUtility.UrlEncode), every
    byte escaped, and only some characters escaped (an unreserved `-` or `~` among them)."""
    return {
        "lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(key, safe="")),
        "every byte escaped": "".join(f"%{b:02X}" for b in key.encode()),
        "some escaped": "".join(f"%{ord(c):02x}" if c in "/-~a" else c for c in key),
    }


def reply_for(request: RecordedRequest) -> Reply | None:
    """A prompt asking to fail gets a 400 echoing the prompt (as providers do), one asking for the key a 401
    echoing the key it was sent percent-encoded; others succeed."""
    text = json.dumps(request.messages)
    if "echo the key" in text:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return Reply.error(401, f"invalid key: {', '.join(escaped_echoes(key).values())}", code="invalid_api_key")
    if "please fail" in text:
        return Reply.error(400, f"bad request: {text}", code="invalid_request_error")
    return Reply.text("fine")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream(reply_for=reply_for) as up:
        yield up


@contextmanager
def serving(upstream: Upstream, workdir: Path, base_url: str, api_key: str | None = None) -> Iterator[HttpServer]:
    """A server at DEBUG with Alice's token in the variable and Bob's in the file, its model at `base_url`."""
    env = server_env(upstream, workdir / "dumps", api_key=True)
    env["HIVE_MCP_API_BASE"] = base_url
    if api_key is not None:
        env["HIVE_MCP_API_KEY"] = api_key
    tokens = workdir / "tokens.txt"
    tokens.write_text(f"bob:{BOB}\n")
    env.update(HIVE_MCP_AUTH_TOKEN=f"alice:{ALICE}", HIVE_MCP_AUTH_TOKEN_FILE=str(tokens), HIVE_MCP_LOG_LEVEL="DEBUG")
    srv = HttpServer("http", env, workdir, "secret-forms")
    try:
        srv.wait_loaded()  # the tests' calls are bounded as calls, not as litellm's import
        yield srv
    finally:
        srv.terminate()


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [what for what, secret in secrets.items() if secret in text]


def dashboard_dump(server: HttpServer, dump_id: str) -> str:
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=IO_S) as web:
        page = web.get("/dashboard/data", params={"view": "dump", "id": dump_id}, headers=bearer(ALICE))
    assert page.status_code == 200, page.text
    return page.text


def failed_call_places(server: HttpServer, prompt: str) -> dict[str, str]:
    """Where a call of Alice's with `prompt`, which fails, is written: its error result, and its dump read over
    MCP and on the dashboard (the log is the caller's to read, once the server has stopped)."""
    session = Session(authed_target(server, ALICE), "legacy")

    async def go(c: Client) -> tuple[Any, str]:
        failed = await c.call_tool("complete", {"prompt": prompt, "max_retries": 0})
        dump = await c.read_resource(f"hive://failed-requests/{dump_id_in(text_of(failed))}")
        return failed, json.dumps(dump.model_dump(mode="json"))

    try:
        failed, dump = session.run(go)
    finally:
        session.close()
    assert failed.is_error, text_of(failed)
    return {"the error": text_of(failed), "the dump": dump,
            "the dashboard": dashboard_dump(server, dump_id_in(text_of(failed)))}  # fmt: skip


def test_no_secret_form_reaches_a_result_a_dump_a_conversation_the_dashboard_or_the_log(
    upstream: Upstream, tmp_path: Path
) -> None:
    query = "&".join(f"{k}={v}" for k, v in QUERY.items())
    with serving(upstream, tmp_path, f"http://127.0.0.1:{upstream.port}/v1?{query}") as server:
        session = Session(authed_target(server, ALICE), "legacy")

        async def go(c: Client) -> tuple[Any, Any, str, str]:
            failed = await c.call_tool("complete", {"prompt": f"please fail, {QUOTED}", "max_retries": 0})
            ok = await c.call_tool("complete", {"prompt": QUOTED})
            dump = await c.read_resource(f"hive://failed-requests/{dump_id_in(text_of(failed))}")
            assert not ok.is_error, text_of(ok)
            conversation_id = ok.structured_content["conversation_id"]
            thread = await c.read_resource(f"hive://conversations/{conversation_id}")
            return failed, ok, json.dumps(dump.model_dump(mode="json")), json.dumps(thread.model_dump(mode="json"))

        try:
            failed, ok, dump, thread = session.run(go)
        finally:
            session.close()
        assert failed.is_error and not ok.is_error, (text_of(failed), text_of(ok))
        assert "[REDACTED]" in dump and "[REDACTED]" in thread  # the prompt was there, its secrets were not
        places = {"the error": text_of(failed), "the dump": dump, "the conversation": thread,
                  "the dashboard": dashboard_dump(server, dump_id_in(text_of(failed)))}  # fmt: skip
    places["the log"] = server.stderr()
    assert "127.0.0.1" in places["the log"]  # the start-up line still names where the model is
    found = {place: leaks(text, SECRETS) for place, text in places.items() if leaks(text, SECRETS)}
    assert not found, found


def test_a_password_in_the_base_url_reaches_no_result_dump_dashboard_or_log(upstream: Upstream, tmp_path: Path) -> None:
    """The openai client refuses a key beside a URL's userinfo, so every call fails: each one leaves a dump of
    a prompt that quotes the password (no conversation is kept of a failed call)."""
    secrets = {"the URL password": PASSWORD, "the URL user": URL_USER}
    with serving(upstream, tmp_path, f"http://{URL_USER}:{PASSWORD}@127.0.0.1:{upstream.port}/v1") as server:
        places = failed_call_places(server, f"quoting {PASSWORD}")
        assert "[REDACTED]" in places["the dump"]
    places["the log"] = server.stderr()
    assert "127.0.0.1" in places["the log"]
    found = {place: leaks(text, secrets) for place, text in places.items() if leaks(text, secrets)}
    assert not found, found


def test_the_key_echoed_percent_encoded_in_any_case_reaches_no_result_dump_dashboard_or_log(
    upstream: Upstream, tmp_path: Path
) -> None:
    echoes = escaped_echoes(SPECIAL_KEY)
    with serving(upstream, tmp_path, upstream.base_url, api_key=SPECIAL_KEY) as server:
        places = failed_call_places(server, "echo the key")
        assert "invalid key: [REDACTED]" in places["the error"], places["the error"]
    places["the log"] = server.stderr()
    assert upstream.chat_requests()[-1].headers["authorization"] == f"Bearer {SPECIAL_KEY}"  # the echo held the key
    found = {place: leaks(text, echoes) for place, text in places.items() if leaks(text, echoes)}
    assert not found, found
