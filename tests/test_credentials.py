"""The server's key goes only where the operator pointed it (hive_mcp/provider/shaping.py).

Without a models config the operator configured one model: HIVE_MCP_API_KEY and
HIVE_MCP_API_BASE go with that model's provider only. A client naming another
provider gets that provider's own credentials from the environment, or a one-line
refusal; never the server's key, and never a request to a local port nobody named.
The real LiteLLMProvider and litellm's HTTP path; listeners on the local ports
litellm would use by default record any connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hive_mcp.provider import LiteLLMProvider, ProviderError
from tests.clients import connect, mcp_server, text_of
from tests.conftest import FAST_RETRY, TEST_KEY
from harness.upstream import Reply, Upstream

LOCAL_DEFAULTS = {  # litellm's own default endpoint of each provider that runs on this machine
    "ollama/x": 11434, "ollama_chat/x": 11434, "llamafile/x": 8080, "lemonade/x": 8000, "docker_model_runner/x": 22088,
}  # fmt: skip
ENV_KEY = "sk-ant-from-the-environment-0123456789"


class Listener:
    """A TCP listener on 127.0.0.1:`port` that counts the connections it gets, on a thread of its own."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[dict[int, Listener]]:
    """A listener on each default port that is free here (one another program holds is left out)."""
    found: dict[int, Listener] = {}
    for port in set(LOCAL_DEFAULTS.values()):
        try:
            found[port] = Listener(port)
        except OSError:
            pass
    try:
        yield found
    finally:
        for listener in found.values():
            listener.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OLLAMA_API_BASE", "LLAMAFILE_API_BASE", "LEMONADE_API_BASE", "DOCKER_MODEL_RUNNER_API_BASE",
                 "ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def server_for(upstream: Upstream, store: Any) -> Any:
    provider = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    return mcp_server(provider, store, default_model="openai/gpt-4o-mini")


@pytest.mark.parametrize("model", sorted(LOCAL_DEFAULTS))
async def test_a_local_provider_nobody_named_is_refused_and_its_port_hears_nothing(
    model: str, upstream: Upstream, store: Any, listeners: dict[int, Listener], clean_env: None
) -> None:
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": model})
    text = text_of(r)
    assert r.is_error and "\n" not in text and "model" in text, text
    assert TEST_KEY not in text
    port = LOCAL_DEFAULTS[model]
    if port in listeners:
        assert listeners[port].connections == 0
    assert upstream.requests == []  # nor to the server's own base URL


async def test_a_key_for_a_local_provider_without_its_address_still_sends_nothing_to_its_default_port(
    upstream: Upstream, store: Any, listeners: dict[int, Listener], clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMAFILE_API_KEY", "llamafile-key-0123456789")
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": "llamafile/x"})
    assert r.is_error and "LLAMAFILE_API_BASE" in text_of(r), text_of(r)
    if 8080 in listeners:
        assert listeners[8080].connections == 0
    assert upstream.requests == []


async def test_another_provider_gets_its_own_key_from_the_environment_never_the_servers(
    upstream: Upstream, store: Any, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    monkeypatch.setenv("ANTHROPIC_API_BASE", upstream.anthropic_base)
    upstream.script(Reply.anthropic("from anthropic"))
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": "anthropic/claude-x"})
    assert not r.is_error and text_of(r) == "from anthropic", text_of(r)
    [request] = upstream.chat_requests()
    assert request.path == "/v1/messages"
    sent = " ".join(request.headers.values())
    assert ENV_KEY in sent and TEST_KEY not in sent


async def test_another_provider_without_credentials_is_one_line_naming_its_variable(
    upstream: Upstream, store: Any, clean_env: None
) -> None:
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": "anthropic/claude-x"})
    text = text_of(r)
    assert r.is_error and "\n" not in text and "ANTHROPIC_API_KEY" in text, text
    assert upstream.requests == []


async def test_the_default_provider_keeps_the_servers_key_and_base(upstream: Upstream, store: Any) -> None:
    upstream.script(Reply.text("same provider"))
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool("complete", {"prompt": "hi", "model": "openai/gpt-4o"})
    assert not r.is_error and text_of(r) == "same provider", text_of(r)
    [request] = upstream.chat_requests()
    assert request.headers.get("authorization") == f"Bearer {TEST_KEY}"


UNKNOWN_NAME = (
    "invalid arguments: model: {!r} is not a model litellm knows; name it provider/model (e.g. openai/gpt-4o-mini), "
    "or see list_models"
)


@pytest.mark.parametrize("tool", ["complete", "stream_complete"])
@pytest.mark.parametrize("model", ["gpt-4o-minii", "nosuchprovider/x"])
async def test_a_name_litellm_cannot_place_is_refused_naming_the_field_and_nothing_is_sent(
    model: str, tool: str, upstream: Upstream, store: Any, clean_env: None
) -> None:
    """Not another provider's model wanting a key (no GPT_4O_MINII_API_KEY to set): a name nothing can serve."""
    async with connect(server_for(upstream, store), "legacy") as c:
        r = await c.call_tool(tool, {"prompt": "hi", "model": model})
    assert r.is_error and text_of(r) == UNKNOWN_NAME.format(model), text_of(r)
    assert upstream.requests == []
    assert store.count() == 0  # a refusal of the caller's input, like every other: no dump


async def test_the_provider_itself_refuses_a_name_litellm_cannot_place_as_not_found(
    upstream: Upstream, store: Any, clean_env: None
) -> None:
    """Called directly (no admission before it), the provider says the same, as a failure before any attempt."""
    provider = LiteLLMProvider(
        model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url, retry=FAST_RETRY, dump_store=store
    )
    with pytest.raises(ProviderError) as caught:
        await provider.acomplete([{"role": "user", "content": "hi"}], model="gpt-4o-minii")
    err = caught.value
    assert (err.error_type, err.attempts) == ("not_found", 0)
    assert err.message == UNKNOWN_NAME.format("gpt-4o-minii").removeprefix("invalid arguments: ")
    assert upstream.requests == []


async def test_a_bare_name_litellm_lists_and_a_prefixed_name_still_reach_the_upstream(
    upstream: Upstream, store: Any, clean_env: None
) -> None:
    upstream.script(Reply.text("bare"), Reply.text("prefixed"))
    async with connect(server_for(upstream, store), "legacy") as c:
        bare = await c.call_tool("complete", {"prompt": "hi", "model": "gpt-4o-mini"})
        prefixed = await c.call_tool("complete", {"prompt": "hi", "model": "openai/gpt-4o-minii"})
    assert (text_of(bare), text_of(prefixed)) == ("bare", "prefixed")
    assert [r.body["model"] for r in upstream.chat_requests()] == ["gpt-4o-mini", "gpt-4o-minii"]
