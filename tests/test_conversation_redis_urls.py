"""The Redis conversation store's URLs: the schemes it takes, and how it names a server without its secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive_mcp.conversations.redis_store import RedisStore, redacted_url
from tests.conftest_valkey import started
from harness.valkey import ValkeyProcess
from tests.conftest_valkey import valkey_binary


async def test_a_unix_socket_url_reaches_the_server(tmp_path: Path) -> None:
    sock = tmp_path / "valkey.sock"
    with ValkeyProcess(valkey_binary(), extra=("--unixsocket", str(sock), "--unixsocketperm", "700")):
        store = RedisStore(f"unix://{sock}")
        assert store.name == f"unix://{sock}"
        thread = await started(store)
        assert (await store.get(thread.id)).thread.turns == 1
        await store.aclose()


def test_other_schemes_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="state_url: http:// is not a state store scheme"):
        RedisStore("http://127.0.0.1:6379")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache.internal:6380/2", "redis://cache.internal:6380/2"),
        ("rediss://app:hunter2@cache.internal/0", "rediss://cache.internal/0"),
        ("redis://[::1]:6379", "redis://[::1]:6379"),
    ],
)
def test_the_store_is_named_without_credentials(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
    assert RedisStore(url).name == shown
