"""Messages the SDK's HTTP transports answered wrongly or not at all, against `python -m hive_mcp` as a subprocess
(`hive_mcp.http.messages`, and the transport's hook for a cancelled request in `hive_mcp.sdk_compat`): a request
whose id cannot be one, a batch, a protocol version this server does not speak, a progress token with a fraction,
a request its client cancels. Raw httpx, so the wire is what is asserted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from tests.http_access import MCP_HEADERS, raw
from tests.servers import HttpServer, server_env
from harness.processes import INITIALIZE, PROTOCOL_VERSION
from harness.upstream import RecordedRequest, Reply, Upstream

MODERN = "2026-07-28"
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def by_prompt(request: RecordedRequest) -> Reply | None:
    """Two chunks at once for a prompt saying "in chunks"; for one saying "wait", one chunk, then a wait for a
    release that never comes (the call is cancelled); the upstream's default for the rest."""
    prompt = json.dumps(request.body) if request.body is not None else ""
    if "wait" in prompt:
        return Reply.stream(["waiting "], hold_after=1)
    return Reply.stream(["one ", "two"]) if "in chunks" in prompt else None


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream(reply_for=by_prompt) as up:
        yield up


@contextmanager
def started(upstream: Upstream, workdir: Path, transport: str) -> Iterator[HttpServer]:
    server = HttpServer(transport, server_env(upstream, workdir / f"dumps-{transport}", api_key=True), workdir,
                        transport)  # fmt: skip
    try:
        server.wait_loaded()  # the tests' calls are bounded as calls, not as litellm's import too
        yield server
    finally:
        rc = server.terminate()
        assert rc == 0 and "Traceback" not in server.stderr(), server.stderr()[-3000:]


@pytest.fixture(scope="module")
def server(upstream: Upstream, workdir: Path) -> Iterator[HttpServer]:
    with started(upstream, workdir, "http") as http:
        yield http


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an event stream's text."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


@contextmanager
def session(client: httpx.Client) -> Iterator[dict[str, str]]:
    """A session opened and initialized for the block, ended after it: the headers a request on it carries."""
    r = client.post("/mcp", headers=MCP_HEADERS, json=INITIALIZE)
    assert r.status_code == 200, r.text
    headers = {**MCP_HEADERS, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL_VERSION}
    done = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert done.status_code == 202, done.text
    try:
        yield headers
    finally:
        client.delete("/mcp", headers=headers)


def refused(r: httpx.Response, code: int, request_id: Any, *named: str) -> str:
    """The one-line message of the 400 `r`, a JSON-RPC error of `code` to `request_id` whose message names each
    of `named`."""
    assert r.status_code == 400, (r.status_code, r.text)
    answer = r.json()
    message = answer["error"]["message"]
    assert answer["id"] == request_id and answer["error"]["code"] == code, answer
    assert all(n in message for n in named) and "\n" not in message, answer
    return message


@pytest.mark.parametrize("bad_id", ["null", "true", "1.5"])
def test_a_request_whose_id_cannot_be_one_is_answered_not_taken_for_a_notification(
    server: HttpServer, bad_id: str
) -> None:
    """The SDK's models read `"id": null` (or a bool, a fraction) as no id, and its transport answered 202 with
    nothing: JSON-RPC answers such a request, as stdio does: -32600, id null, one line."""
    with raw(server) as client, session(client) as headers:
        r = client.post("/mcp", headers=headers, content='{"jsonrpc":"2.0","id":' + bad_id + ',"method":"tools/list"}')
        refused(r, -32600, None, "id")
        assert '"complete"' in client.post("/mcp", headers=headers, json=TOOLS_LIST).text  # and the session goes on


@pytest.mark.parametrize("version", [PROTOCOL_VERSION, MODERN, "2025-06-18", "2025-03-26", None])
def test_a_batch_is_refused_in_one_line_naming_the_protocol_version_only_where_it_has_no_batches(
    server: HttpServer, version: str | None
) -> None:
    """No header means 2025-03-26 (MCP's streamable HTTP: the server assumes it when the header is absent), a
    version with batches: the refusal says this server takes none, naming no version; a header naming a version
    without batches (2025-06-18 on) is named."""
    headers = MCP_HEADERS | ({"mcp-protocol-version": version} if version else {})
    with raw(server) as client:
        r = client.post("/mcp", headers=headers, content='[{"jsonrpc":"2.0","id":1,"method":"ping"}]')
    message = refused(r, -32600, None, "batch", "send each message on its own")
    if version is None or version < "2025-06-18":
        assert "does not take JSON-RPC batches" in message and "20" not in message, message
    else:
        assert f"MCP {version}" in message, message


def test_an_unsupported_protocol_version_header_is_a_400_with_one_line_naming_it(server: HttpServer) -> None:
    """Not the SDK's line about a `_meta` envelope the request never meant to have: the header, the value sent
    and the versions this server speaks."""
    headers = {**MCP_HEADERS, "mcp-protocol-version": "1999-01-01"}
    with raw(server) as client:
        for body in (TOOLS_LIST, {"jsonrpc": "2.0", "method": "notifications/initialized"}):
            r = client.post("/mcp", headers=headers, json=body)
            message = refused(r, -32022, body.get("id"), "MCP-Protocol-Version", "1999-01-01",
                              *HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)  # fmt: skip
            assert "_meta" not in message, message


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unsupported_protocol_version_header_on_a_get_or_delete_is_the_same_400(
    server: HttpServer, method: str
) -> None:
    """MCP: a request of any method with a version the server does not speak gets 400; the SDK took the value
    for its 2026 era and answered 405 as if the method were the mistake."""
    headers = {"accept": "text/event-stream", "mcp-protocol-version": "1999-01-01"}
    with raw(server) as client:
        r = client.request(method, "/mcp", headers=headers)
    refused(r, -32022, None, "MCP-Protocol-Version", "1999-01-01")


@pytest.mark.parametrize("era", [PROTOCOL_VERSION, MODERN])
def test_a_progress_token_with_a_fraction_gets_its_progress_notifications_carrying_that_number(
    server: HttpServer, era: str
) -> None:
    """MCP's progress token is a string or any number; the SDK's models take only a string or an integer and
    refused `3.5` (-32602). The call is served and each of its notifications carries 3.5, as a number: on a
    session, and in a 2026 request that carries its own envelope."""
    meta: dict[str, Any] = {"progressToken": 3.5}
    request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "stream_complete", "arguments": {"prompt": "in chunks"}, "_meta": meta}}  # fmt: skip
    with raw(server) as client:
        if era == PROTOCOL_VERSION:
            with session(client) as headers:
                r = client.post("/mcp", headers=headers, json=request)
        else:
            meta |= {"io.modelcontextprotocol/protocolVersion": era, "io.modelcontextprotocol/clientCapabilities": {}}
            headers = {**MCP_HEADERS, "mcp-protocol-version": era, "mcp-method": "tools/call",
                       "mcp-name": "stream_complete"}  # fmt: skip
            r = client.post("/mcp", headers=headers, json=request)
    assert r.status_code == 200, (r.status_code, r.text)
    messages = sse_messages(r.text)
    answer = messages[-1]
    assert answer.get("id") == 7 and answer["result"]["isError"] is False, answer
    tokens = [m["params"]["progressToken"] for m in messages if m.get("method") == "notifications/progress"]
    assert tokens and all(token == 3.5 and isinstance(token, float) for token in tokens), tokens


MARKED_TOKENS = {
    '"hive-mcp:number-token:3.5"': "hive-mcp:number-token:3.5",
    '"hive\\u002dmcp:number-token:3.5"': "hive-mcp:number-token:3.5",  # the same string, with an escape
    '"hive-mcp:string-token:hive-mcp:number-token:3.5"': "hive-mcp:string-token:hive-mcp:number-token:3.5",
    "3.5": 3.5,
}
"""Progress tokens as sent (JSON) and as they must come back: strings that read like the server's alias for a
number (`hive_mcp.number_tokens`), or for such a string, and the number itself."""


def marked_call(request_id: int, token_json: str) -> str:
    return ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"stream_complete",'
            '"arguments":{"prompt":"in chunks"},"_meta":{"progressToken":%s}}}' % (request_id, token_json))


def test_a_string_progress_token_that_reads_like_the_servers_alias_for_a_number_comes_back_as_that_string(
    server: HttpServer,
) -> None:
    """The server carries a progress token of 3.5 as the string `hive-mcp:number-token:3.5`: a client whose own
    token is that string gets that string back on its notifications, not the number 3.5."""
    with raw(server) as client, session(client) as headers:
        for request_id, (token_json, token) in enumerate(MARKED_TOKENS.items(), start=20):
            r = client.post("/mcp", headers=headers, content=marked_call(request_id, token_json))
            assert r.status_code == 200, (r.status_code, r.text)
            messages = sse_messages(r.text)
            assert messages[-1].get("id") == request_id and messages[-1]["result"]["isError"] is False, messages
            tokens = [m["params"]["progressToken"] for m in messages if m.get("method") == "notifications/progress"]
            assert tokens and all(type(t) is type(token) and t == token for t in tokens), (token_json, tokens)


def test_a_task_s_progress_on_the_session_s_stream_carries_each_token_as_it_was_sent(server: HttpServer) -> None:
    """A task's progress goes out on the session's own event stream (GET), after its request was answered: each
    token comes back as sent there too, a string that reads like the server's alias for a number as that string."""
    calls = dict(enumerate(MARKED_TOKENS.items(), start=30))
    seen: list[dict[str, Any]] = []
    with raw(server) as client, session(client) as headers:
        with client.stream("GET", "/mcp", headers={**headers, "accept": "text/event-stream"}) as events:
            assert events.status_code == 200
            lines = events.iter_lines()
            for request_id, (token_json, _) in calls.items():
                body = marked_call(request_id, token_json).replace('"_meta"', '"task":{},"_meta"')
                r = client.post("/mcp", headers=headers, content=body)
                assert r.status_code == 200 and "taskId" in r.text, (r.status_code, r.text)
            for line in lines:  # until every task has told its end
                seen += sse_messages(line)
                if sum(m.get("method") == "notifications/tasks/status" for m in seen) == len(calls):
                    break
    tokens = [m["params"]["progressToken"] for m in seen if m.get("method") == "notifications/progress"]
    assert sorted(map(repr, set(tokens))) == sorted(map(repr, set(MARKED_TOKENS.values()))), tokens


def test_a_request_the_client_cancels_is_not_answered_and_its_event_stream_ends(server: HttpServer) -> None:
    """MCP's cancellation: the receiver of `notifications/cancelled` SHOULD NOT answer the request; the SDK's
    transport answered it -32800. The request's event stream ends with no message for it."""
    request = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "stream_complete", "arguments": {"prompt": "wait to be cancelled"},
                          "_meta": {"progressToken": "p9"}}}  # fmt: skip
    seen: list[dict[str, Any]] = []
    with raw(server) as client, raw(server) as other, session(client) as headers:
        with client.stream("POST", "/mcp", headers=headers, json=request) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            for line in lines:  # the call is being served once its first notification comes
                seen += sse_messages(line)
                if seen:
                    break
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
            assert other.post("/mcp", headers=headers, json=cancel).status_code == 202
            for line in lines:  # to the end of the stream, which the server closes
                seen += sse_messages(line)
    assert seen and all("id" not in m for m in seen), seen


def test_a_legacy_sse_session_answers_bad_messages_in_one_line_and_gives_a_fractional_progress_token_back(
    upstream: Upstream, workdir: Path
) -> None:
    """The legacy transport as the streamable one: a batch or a request whose id cannot be one is answered -32600
    in one line (the SDK said "Could not parse message" in plain text, or 202 and nothing); a progress token of 3.5
    reaches the call (the SDK refused it, -32602) and its notifications carry 3.5; a string token that reads like
    the server's alias for 3.5 comes back as that string."""
    calls = dict(enumerate(MARKED_TOKENS.items(), start=20))
    seen: list[dict[str, Any]] = []
    with started(upstream, workdir, "sse") as legacy:
        with raw(legacy) as client, client.stream("GET", "/sse") as events:
            lines = events.iter_lines()  # kept: a generator dropped mid-way closes the stream, and the session
            endpoint = next(line for line in lines if line.startswith("data:")).removeprefix("data:").strip()
            headers = {"content-type": "application/json"}
            r = client.post(endpoint, headers=headers, content='[{"jsonrpc":"2.0","id":1,"method":"ping"}]')
            refused(r, -32600, None, "batch")
            refused(client.post(endpoint, headers=headers, content='{"jsonrpc":"2.0","id":null,"method":"ping"}'),
                    -32600, None, "id")  # fmt: skip
            for message in (INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}):
                assert client.post(endpoint, headers=headers, json=message).status_code == 202
            for request_id, (token_json, _) in calls.items():
                r = client.post(endpoint, headers=headers, content=marked_call(request_id, token_json))
                assert r.status_code == 202, r.text
            for line in lines:
                seen += sse_messages(line)
                if all(any(m.get("id") == request_id for m in seen) for request_id in calls):
                    break
    for request_id in calls:
        assert [m for m in seen if m.get("id") == request_id][0]["result"]["isError"] is False, seen
    tokens = [m["params"]["progressToken"] for m in seen if m.get("method") == "notifications/progress"]
    assert sorted(map(repr, set(tokens))) == sorted(map(repr, set(MARKED_TOKENS.values()))), tokens
