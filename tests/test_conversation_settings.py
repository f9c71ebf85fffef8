"""The conversation settings, and the store `serve` opens from them: the backend, the limits, the password
(a secret: never echoed), and the redaction of the server's secrets in what is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive_mcp.conversations import StoreError
from hive_mcp.conversations.redis_store import RedisStore
from hive_mcp.conversations.sqlite_store import SQLiteStore
from hive_mcp.state_url import check_state_url, with_password
from hive_mcp.backends import conversation_store
from hive_mcp.settings import SettingsError, load_settings
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary

SECRET = "sk-live-0123456789abcdefSECRETKEY"


def settings(**environ: str):  # noqa: ANN201 - a Settings
    return load_settings(environ={f"HIVE_MCP_{k.upper()}": v for k, v in environ.items()}, export=False)


def test_defaults_and_overrides() -> None:
    s = settings()
    assert (s.conversations, s.conversation_ttl_s, s.conversation_max) == ("on", 10800, 1000)
    assert (s.conversation_max_turns, s.conversation_max_bytes, s.state_url) == (200, 2 * 1024 * 1024, None)
    s = settings(conversations="off", conversation_max_turns="5", state_url=" redis://cache:6379/2 ")
    assert (s.conversations, s.conversation_max_turns, s.state_url) == ("off", 5, "redis://cache:6379/2")


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("state_url", "http://:hunter2@cache:6379", "HIVE_MCP_STATE_URL: http:// is not a state store scheme; "
         "expected redis://, rediss:// or unix://"),
        ("conversations", "maybe", "HIVE_MCP_CONVERSATIONS: invalid value 'maybe'"),
        ("conversation_max_turns", "0", "HIVE_MCP_CONVERSATION_MAX_TURNS: invalid value '0'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, error: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(**{name: value})
    assert str(info.value).startswith(error) and "\n" not in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize(("url", "error"), [
    ("cache:6379", "not a URL"), ("reddis://:hunter2@cache:6379/0", "reddis:// is not a state store scheme"),
    ("redis://:hunter2@[::1/0", "IPv6"), ("redis://:hunter2@[::1]:notaport/0", "the port is not a number"),
    ("redis://:hunter2@cache:99999/0", "the port is not a number"), ("redis://cache:0", "the port is not a number"),
    ("redis://:hunter2@cache/zero", "the database (the URL's path) is not a number"),
    ("redis://cache/-1", "the database (the URL's path) is not a number"),
    ("redis://cache/0?db=x&password=hunter2", "the query parameter db is not a whole number"),
    ("redis://cache?protocol=4", "protocol must be 2 or 3"), ("redis://cache?socket_timeout=soon", "socket_timeout"),
    ("redis://cache/0?dbb=1&password=hunter2", "the query parameter dbb is not one"),
    ("redis://cache/0?decode_responses=false", "decode_responses is not one"),
    ("redis://cache/0?ssl_cert_reqs=none", "ssl_cert_reqs is not one"),  # a TLS option on a plain connection
    ("rediss://cache/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be none, optional or required"),
    ("unix://run/valkey.sock", "unix:// takes the socket's absolute path"), ("unix://", "absolute path"),
    ("unix:///run/valkey.sock?socket_keepalive=1", "socket_keepalive is not one"),
])  # fmt: skip
def test_a_state_url_redis_cannot_use_is_refused_naming_the_part_never_the_password(url: str, error: str) -> None:
    with pytest.raises(ValueError) as info:
        check_state_url(url)
    assert error in str(info.value) and "hunter2" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SettingsError) as from_settings:
        settings(state_url=url)
    assert str(from_settings.value).startswith("HIVE_MCP_STATE_URL: ") and "hunter2" not in str(from_settings.value)


@pytest.mark.parametrize("url", [
    "redis://cache", "redis://:hunter2@cache:6380/2", "redis://[::1]:6379/0?db=3&protocol=3&socket_timeout=2.5",
    "redis://app:hunter2@cache/0?client_name=hive&health_check_interval=30&max_connections=10&retry_on_timeout=yes"
    "&socket_keepalive=1&socket_connect_timeout=1", "redis://cache/0/", "redis://cache/0?db=",
    "rediss://app:hunter2@cache:6380/1?ssl_cert_reqs=none&ssl_check_hostname=false&ssl_ca_certs=/etc/ca.pem",
    "unix:///run/valkey.sock", "unix://:hunter2@/run/valkey.sock?db=1&password=hunter2",
])  # fmt: skip
def test_every_state_url_accepted_is_one_redis_py_builds_a_connection_from(url: str) -> None:
    import redis.asyncio

    assert check_state_url(f" {url} ") == url
    redis.asyncio.from_url(url).connection_pool.make_connection()  # what failed later, on every command


def test_the_state_password_is_a_secret() -> None:
    s = settings(state_password=SECRET)
    assert SECRET not in repr(s) and s.state_password is not None
    assert s.state_password.get_secret_value() == SECRET


def test_with_password_puts_it_where_each_scheme_carries_it() -> None:
    assert with_password("redis://cache:6379/0", "p@ss") == "redis://:p%40ss@cache:6379/0"
    assert with_password("rediss://app@cache:6380", "pw") == "rediss://app:pw@cache:6380"
    assert with_password("unix:///run/valkey.sock?db=1", "pw") == "unix:///run/valkey.sock?db=1&password=pw"
    assert with_password("redis://:own@cache", "other") == "redis://:own@cache"  # the URL's own wins
    assert with_password("redis://cache", None) == "redis://cache"
    assert check_state_url("  ") is None


def test_serve_opens_sqlite_in_the_hive_home_or_none_when_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "home"))
    store = conversation_store(settings(conversation_max_turns="7", conversation_ttl_s="60"))
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "home" / "hive-mcp.sqlite3"
    assert (store.limits.max_turns, store.limits.ttl_s) == (7, 60)
    assert conversation_store(settings(conversations="off")) is None


async def test_stored_text_is_redacted_of_the_servers_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "provider-credential-42")
    store = conversation_store(settings(api_key=SECRET))
    async with store:
        thread = await store.create(
            owner="local",
            messages=[{"role": "user", "content": f"my key is {SECRET} and provider-credential-42"}],
        )
        stored = (await store.get(thread.id)).chat_messages()[0]["content"]
    assert SECRET not in stored and "provider-credential-42" not in stored and "[REDACTED]" in stored
    raw = (tmp_path / "home" / "hive-mcp.sqlite3").read_bytes()
    assert SECRET.encode() not in raw


async def test_redis_with_a_password_from_the_setting() -> None:
    password = "valkey-pass-0123456789"
    with ValkeyProcess(valkey_binary(), extra=("--requirepass", password)) as server:
        store = conversation_store(settings(state_url=server.url, state_password=password))
        assert isinstance(store, RedisStore) and password not in store.name
        async with store:
            thread = await store.create(owner="local", messages=[{"role": "user", "content": "hi"}])
            assert (await store.get(thread.id)).thread.id == thread.id
        refused = conversation_store(settings(state_url=server.url))
        async with refused:
            with pytest.raises(StoreError) as info:
                await refused.create(owner="local", messages=[{"role": "user", "content": "hi"}])
        assert str(info.value).startswith(f"conversation store {server.url}") and password not in str(info.value)
