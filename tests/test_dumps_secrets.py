"""No secret reaches a failure dump: configured values, however quoted, key and token shapes, credential
headers, and a base URL's userinfo and query, whether the structural walk sees them or only the text scan does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hive_mcp.dumps import REDACTED, AttemptRecord, DumpStore, FailureDump, make_dump_id, strip_credentials
from tests.conftest_dumps import T0, make_dump


def all_bytes(d: Path) -> bytes:
    return b"".join(p.read_bytes() for p in d.iterdir())


def test_secrets_never_written(store_dir: Path) -> None:
    secret = "hunter2-not-a-known-key-shape-XYZ"
    late_secret = "another.configured.secret.value"
    quoted_secret = 'pa"ss\\word-1234'
    store = DumpStore(store_dir, secrets=[secret, "short"], max_age=None)
    store.add_secret(late_secret)
    store.add_secret(quoted_secret)
    anthropic_key = "sk-ant-api03-" + "A" * 40
    openai_key = "sk-proj-" + "b" * 40
    dump = FailureDump(
        timestamp=T0,
        model="openai/gpt-4o",
        api_base=f"https://user:{secret}@proxy.example.com/v1?api_key={secret}&token=abc&api-version=2024",
        error_type="auth",
        outcome="not_retried",
        attempts=[AttemptRecord(time=T0, error_type="auth", status=401, message=f"Invalid key {secret}")],
        messages=[
            {"role": "system", "content": f"the key is {secret} and {late_secret}"},
            {"role": "user", "content": f"try {anthropic_key} or {openai_key} or Bearer abcdefghijklmnop"},
            {"role": "user", "content": f"quoted {quoted_secret}"},
            {
                "role": "user",
                "content": "headers",
                "extra_headers": {
                    "Authorization": "Basic dXNlcjpwYXNz",
                    "x-api-key": "plainvalue",
                    "API_KEY": "plainvalue",
                    "Proxy-Authorization": "plainvalue",
                    "api-key": "plainvalue",
                },
            },
        ],
        tools=[{"type": "function", "function": {"name": "f", "description": secret}}],
        response_format={"type": "json_schema", "note": late_secret},
    )
    dump_id = store.write(dump)
    assert dump_id is not None
    blob = all_bytes(store_dir)
    for leaked in (secret, late_secret, anthropic_key, openai_key, "abcdefghijklmnop", "dXNlcjpwYXNz", "plainvalue"):
        assert leaked.encode() not in blob, leaked
    assert quoted_secret.encode() not in blob
    assert json.dumps(quoted_secret)[1:-1].encode() not in blob
    back = store.read(dump_id)  # still valid JSON
    assert back.api_base == "https://proxy.example.com/v1?api-version=2024"
    headers = back.messages[3]["extra_headers"]
    assert set(headers.values()) == {REDACTED}
    assert REDACTED in back.messages[0]["content"]
    assert back.messages[1]["content"] == f"try {REDACTED} or {REDACTED} or Bearer {REDACTED}"


def test_text_level_check_catches_what_the_walk_missed(store_dir: Path) -> None:
    secret = 'a "quoted" secret value'
    store = DumpStore(store_dir, secrets=[secret])
    dump_id = make_dump_id(T0, "auth", "m", "00000000")
    # Unredacted data, as if the structural walk had missed something.
    payload = store._serialize({"note": f"x {secret} y", "key sk-" + "z" * 20: 1}, dump_id)
    text = payload.decode()
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert "sk-zzzz" not in text
    assert json.loads(text) == {"note": f"x {REDACTED} y", f"key {REDACTED}": 1, "id": dump_id}


def test_secrets_the_walk_cannot_see_are_still_redacted(store_dir: Path) -> None:
    """A secret in an object's repr, in a dict key, or right after a newline: the text scan sees them all."""
    secret = "plain-configured-value-77"
    openai_key = "sk-proj-" + "c" * 30

    class Opaque:
        def __repr__(self) -> str:
            return f"<Opaque {secret} {openai_key}>"

    store = DumpStore(store_dir, secrets=[secret], max_age=None)
    dump = make_dump(
        messages=[
            {"role": "user", "content": f"first line\n{openai_key}\n", "meta": Opaque()},
            {"role": "user", "content": "x", f"key {secret}": 1},
        ]
    )
    dump_id = store.write(dump)
    assert dump_id is not None
    blob = all_bytes(store_dir)
    assert secret.encode() not in blob and openai_key.encode() not in blob
    back = store.read(dump_id)
    assert back.messages[0]["content"] == f"first line\n{REDACTED}\n"
    assert back.messages[0]["meta"] == f"<Opaque {REDACTED} {REDACTED}>"
    assert f"key {REDACTED}" in back.messages[1]


def test_short_secrets_are_ignored(store_dir: Path) -> None:
    store = DumpStore(store_dir, secrets=["user"], max_age=None)
    dump_id = store.write(make_dump(messages=[{"role": "user", "content": "user text"}]))
    assert dump_id is not None
    assert store.read(dump_id).messages[0] == {"role": "user", "content": "user text"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, None),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("https://u:p@host:8443/v1", "https://host:8443/v1"),
        (
            "https://host/v1?api_key=K&key=K&access_token=T&sig=S&api-version=2024-01-01",
            "https://host/v1?api-version=2024-01-01",
        ),
        ("https://host/v1?code=C&tenant=T&x=1", "https://host/v1"),  # any query value may be a key
        ("http://host/v1#access_token=T", "http://host/v1"),
        ("http://[::1/v1", REDACTED),
    ],
)
def test_strip_credentials(url: str | None, expected: str | None) -> None:
    assert strip_credentials(url) == expected


def test_failure_dump_never_holds_credentialed_api_base() -> None:
    dump = make_dump(api_base="https://me:pw@host/v1?api_key=abc")
    assert dump.api_base == "https://host/v1"
