"""Redaction: secrets by value and key shapes (hive_mcp.redact), and the provider keeping
every credential of its environment out of errors, logs and dumps."""

from __future__ import annotations

import json
import logging
import re
from base64 import b64encode, urlsafe_b64decode, urlsafe_b64encode
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from hive_mcp.dumps import DumpStore
from hive_mcp.redact import (
    REDACTED,
    credential_values,
    find_key,
    is_credential_name,
    json_safe,
    redact,
    redact_json,
    redact_text,
    secret_forms,
)
from tests.conftest import FAST_RETRY, TEST_KEY
from harness.upstream import Reply, Upstream

# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------

SHAPED = {
    "openai": "sk-proj-" + "b" * 40,
    "anthropic": "sk-ant-api03-" + "A" * 40,
    "google": "AIza" + "x" * 35,
    "aws id": "AKIA" + "ABCDEFGHIJKLMNOP",
    "aws temporary id": "ASIA" + "ABCDEFGHIJKLMNOP",
    "groq": "gsk_" + "a" * 30,
    "hugging face": "hf_" + "a" * 30,
    "github": "ghp_" + "a" * 30,
    "github pat": "github_pat_" + "a" * 30,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private key block": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + "q" * 64 + "\n" + "Z" * 64
    + "\n-----END RSA PRIVATE KEY-----",
    "openssh private key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    "aws secret": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws secret in the environment": "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.mark.parametrize("key", SHAPED.values(), ids=SHAPED.keys())
@pytest.mark.parametrize("template", ["{}", "key: {}.", "line one\n{}\n", "'{}'", '"{}"', "\t{}", "\x07{}", "a\\{}"])
def test_key_shapes_are_redacted_in_text_and_in_json(key: str, template: str) -> None:
    text = template.format(key)
    assert find_key(text)  # a file holding it is never sent
    assert redact_text(text) == template.format(REDACTED)
    encoded, changed = redact_json(json.dumps({"k": text}, ensure_ascii=False), ())
    assert changed and json.loads(encoded) == {"k": template.format(REDACTED)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdefghijk", f"Authorization: Bearer {REDACTED}"),
        ("bearer\tabcdefghijkl==", f"bearer\t{REDACTED}"),
        ("BEARER\nabc.def-ghi_jkl", f"BEARER\n{REDACTED}"),
        ("GET https://h/v1?api_key=s3cr3tvalue&v=1", f"GET https://h/v1?api_key={REDACTED}&v=1"),
        ("https://h/p?x=1&access_token=abc.def#f", f"https://h/p?x=1&access_token={REDACTED}#f"),
        ("https://h/p?X-Amz-Signature=abc123", f"https://h/p?X-Amz-Signature={REDACTED}"),
        ("proxy https://user:pass@proxy.example.com/v1", f"proxy https://{REDACTED}@proxy.example.com/v1"),
    ],
)
def test_credential_contexts_keep_their_words(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    encoded, _ = redact_json(json.dumps(text), ())
    assert json.loads(encoded) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sorted(items, key=len)",
        "see https://github.com/org/repo and mail a@b.example",
        "task-abcdefghijklmnopqrstuvwxyz and risk-assessment-procedure-document",
        "ask-me-anything-about-everything-here",  # sk- inside a word
        "the bearer of bad news",
        "https://example.com/search?q=design&page=2",
        "AKIAshort",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
        "set aws_secret_access_key in ~/.aws/credentials",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text
    assert redact_json(json.dumps(text), ()) == (json.dumps(text), False)


def test_secrets_by_value_longest_first() -> None:
    inner, outer = "abcdefgh1234", "prefix-abcdefgh1234-suffix"
    assert redact_text(f"{outer} and {inner}", [inner, outer, "short", None]) == f"{REDACTED} and {REDACTED}"


def test_secrets_with_json_specials_are_found_in_json_text() -> None:
    secret = 'pa"ss\\word\n-1234'
    encoded, changed = redact_json(json.dumps({"m": f"x {secret} y"}, ensure_ascii=False), [secret])
    assert changed and json.loads(encoded) == {"m": f"x {REDACTED} y"}


def test_structural_walk_replaces_sensitive_keys_whole() -> None:
    data = {
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "X_API_KEY": {"nested": 1}, "password": "hunter22"},
        "items": ("sk-" + "q" * 20, b"\xff", float("nan")),
    }
    assert redact(data) == {
        "headers": {"Authorization": REDACTED, "X_API_KEY": REDACTED, "password": REDACTED},
        "items": [REDACTED, "base64:/w==", "nan"],
    }
    # The walk alone leaves strings as they are: the text scan does those.
    assert json_safe(data)["items"][0] == "sk-" + "q" * 20
    assert json_safe(data)["headers"]["password"] == REDACTED


# ---------------------------------------------------------------------------
# Encoded forms of a secret
# ---------------------------------------------------------------------------

SPECIAL_KEY = "k3y/With+Special=chars>>~~0123456789"
"""Changes under percent-encoding, and its base64 holds `+` at every alignment: the two alphabets differ."""


def lower_hex(encoded: str) -> str:
    """`encoded` with its percent-escapes' hex digits in lower case."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def encoded_forms(secret: str) -> dict[str, str]:
    """How a secret may come back from an upstream: percent-encoded in a URL, and base64-encoded
    alone, as the password of a Basic header (`user:key`), and inside a longer encoded string
    at each of the three byte alignments, in both alphabets."""
    raw = secret.encode()
    forms = {"the key": secret, "percent-encoded": quote(secret, safe=""), "form-encoded": quote_plus(secret)}
    forms["percent-encoded, lowercase hex"] = lower_hex(quote(secret, safe=""))  # .NET's HttpUtility.UrlEncode
    forms["form-encoded, lowercase hex"] = lower_hex(quote_plus(secret))
    forms["every byte percent-encoded, either case"] = "".join(
        f"%{b:02x}" if i % 2 else f"%{b:02X}" for i, b in enumerate(raw)
    )
    forms["every other character percent-encoded"] = "".join(
        quote(c, safe="") if i % 2 else "".join(f"%{b:02x}" for b in c.encode()) for i, c in enumerate(secret)
    )
    for alphabet, encode in (("base64", b64encode), ("url-safe base64", urlsafe_b64encode)):
        forms[alphabet] = encode(raw).decode()
        forms[f"{alphabet}, a Basic header"] = encode(b"user:" + raw).decode()
        for k in range(3):
            forms[f"{alphabet}, at offset {k} of a longer string"] = encode(b"xy"[:k] + raw + b" and more").decode()
    return forms


@pytest.mark.parametrize(("what", "form"), encoded_forms(SPECIAL_KEY).items(), ids=encoded_forms(SPECIAL_KEY).keys())
def test_every_encoded_form_of_a_secret_is_redacted(what: str, form: str) -> None:
    forms = secret_forms((SPECIAL_KEY,))
    lead, trail = "invalid key at /v1?x=", " (see the docs)"
    out = redact_text(f"{lead}{form}{trail}", forms)
    assert form not in out and REDACTED in out, (what, out)
    # What is left either side is whole base64 groups, holding at most 2 of the key's bytes at each end.
    head, _, tail = out.removeprefix(lead).removesuffix(trail).partition(REDACTED)
    key = SPECIAL_KEY.encode()
    assert key[:3] not in urlsafe_b64decode(head.replace("+", "-").replace("/", "_")), out
    assert key[-3:] not in urlsafe_b64decode(tail.replace("+", "-").replace("/", "_")), out
    encoded, changed = redact_json(json.dumps({"error": f"{lead}{form}{trail}"}, ensure_ascii=False), forms)
    assert changed and form not in encoded


@pytest.mark.parametrize(
    "text",
    [
        "sorted(items, key=len) at /v1?x=1&y=2",
        "the answer is " + b64encode(b"an ordinary sentence, nothing secret in it").decode(),
        "k3y/With and chars0123456789 apart",
    ],
)
def test_the_forms_of_a_secret_leave_ordinary_text_alone(text: str) -> None:
    assert redact_text(text, secret_forms((SPECIAL_KEY,))) == text


@pytest.mark.parametrize(
    ("secret", "written"),
    [
        ("sk-auditsecretkey0123456789abcdef", "sk%2Dauditsecretkey0123456789abcdef"),  # an unreserved one escaped
        ("audit/Secret+Key=0123456789", "audit%2fSecret+Key%3D0123456789"),  # some, in either case
        ("pass word/with space", "pass+word%2fwith%20space"),  # a space as `+` and as `%20`
        ("clé-secrète-0123", "cl%c3%a9-secr%C3%A8te%2D0123"),  # beyond ASCII: its UTF-8 bytes escaped
        ("clé-secrète-0123", "clé-secrète%2d0123"),  # ... or written as they are beside an escape
        ('pa"ss\\word-0123', "pa%22ss%5cword-0123"),  # what JSON escapes, percent-encoded
    ],
)
def test_a_secret_percent_encoded_whatever_the_encoder_escaped_is_redacted(secret: str, written: str) -> None:
    text = f"upstream said: {written}&next=1"
    assert redact_text(text, [secret]) == f"upstream said: {REDACTED}&next=1"
    assert find_key(text, [secret])  # a file holding it is never sent
    assert redact([{"m": text}], [secret]) == [{"m": f"upstream said: {REDACTED}&next=1"}]
    encoded, changed = redact_json(json.dumps({"m": text}, ensure_ascii=False), [secret])
    assert changed and json.loads(encoded) == {"m": f"upstream said: {REDACTED}&next=1"}


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/search?q=a%20b%2Fc&page=2",
        "100% sure, 50%off, %zz and a lone % at the end %",
        "audit%2fSecret+Key%3d012345678",  # the key but its last character
    ],
)
def test_percent_escapes_beside_no_secret_are_left_alone(text: str) -> None:
    secrets = secret_forms(["audit/Secret+Key=0123456789"])
    assert redact_text(text, secrets) == text
    assert redact_json(json.dumps(text), secrets) == (json.dumps(text), False)
    assert not find_key(text, secrets)


def test_secret_forms_keep_no_short_base64_and_add_no_forms_of_forms() -> None:
    forms = secret_forms((SPECIAL_KEY, "short", None))
    assert SPECIAL_KEY in forms and "short" not in forms
    percent = {SPECIAL_KEY, quote(SPECIAL_KEY, safe=""), quote_plus(SPECIAL_KEY)}
    assert all(len(f) >= 12 for f in set(forms) - percent)  # the base64 forms
    assert secret_forms(forms) == forms  # a set already holding the forms gains nothing more
    assert list(forms) == sorted(forms, key=len, reverse=True)


# ---------------------------------------------------------------------------
# Credentials in the environment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "HIVE_MCP_API_KEY", "OPENAI_API_KEY", "AZURE_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK", "HUGGINGFACE_API_KEY", "HF_TOKEN", "AZURE_CLIENT_SECRET",
        "WATSONX_APIKEY", "VERTEXAI_CREDENTIALS", "REDIS_PASSWORD", "LANGFUSE_SECRET_KEY", "HIVE_MCP_AUTH_TOKEN",
    ],
)  # fmt: skip
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "OPENAI_API_BASE", "AZURE_API_VERSION", "HIVE_MCP_AUTH_TOKEN_FILE"])
def test_other_names(name: str) -> None:
    assert not is_credential_name(name)


def test_credential_values_skip_what_is_not_a_secret(tmp_path: Path) -> None:
    existing = tmp_path / "sa.json"
    existing.write_text("{}")
    service_account = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE"})
    env = {
        "OPENAI_API_KEY": "0123456789abcdef0123456789abcdef",
        "AWS_SECRET_ACCESS_KEY": "/K7MDENG/bPxRfiCYEXAMPLEKEYwJalrXUtnFEMI",  # base64 may start with a slash
        "GOOGLE_APPLICATION_CREDENTIALS": str(existing),  # a path: a setting, not a secret
        "VERTEXAI_CREDENTIALS": service_account,
        "SOME_TOKEN": "short",
        "PORT_KEY": "123456789",
        "PROXY_TOKEN": "  proxy-token-value-42  ",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HIVE_MCP_AUTH_TOKEN": "client-token-one,client-token-two",
    }
    found = set(credential_values(env, {"DOTENV_ONLY_API_KEY": "from-the-dotenv-file"}))
    assert found == {
        "0123456789abcdef0123456789abcdef",
        "/K7MDENG/bPxRfiCYEXAMPLEKEYwJalrXUtnFEMI",
        service_account,
        "-----BEGIN PRIVATE KEY-----\nMIIE",
        "  proxy-token-value-42  ",
        "proxy-token-value-42",
        "from-the-dotenv-file",
        "client-token-one,client-token-two",
        "client-token-one",
        "client-token-two",
    }


# ---------------------------------------------------------------------------
# The provider: every credential of its environment is a secret
# ---------------------------------------------------------------------------

HEX_KEY = "3f9c2b7a1d6e4f80a9b5c7d2e1f3a4b6"  # an Azure-style key: no known shape
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"
PROXY_TOKEN = "hive-proxy-7d1e9a2c4b6f8e0a"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OPENAI_API_KEY", HEX_KEY), ("OPENAI_API_KEY", AWS_SECRET), ("OPENAI_API_KEY", PROXY_TOKEN),
     ("AWS_SECRET_ACCESS_KEY", AWS_SECRET), ("OPENAI_API_KEY", SPECIAL_KEY)],
    ids=["32-hex key", "aws-secret-shaped key", "proxy token", "another provider's secret", "key with / + ="],
)  # fmt: skip
async def test_environment_credentials_reach_no_error_log_or_dump(
    upstream: Upstream,
    dump_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
) -> None:
    from hive_mcp.provider import LiteLLMProvider, ProviderError

    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY if variable != "OPENAI_API_KEY" else value)
    monkeypatch.setenv(variable, value)
    caplog.set_level(logging.DEBUG)
    store = DumpStore(dump_dir)
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_base=upstream.base_url, retry=FAST_RETRY,
                               dump_store=store)  # fmt: skip
    forms = encoded_forms(value)  # the upstream echoes the key in every form it may be sent in
    echo = "Incorrect API key provided: " + ", ".join(forms.values()) + ". See https://example.invalid."
    upstream.script(Reply.error(429, echo), Reply.error(401, echo), Reply.raw(echo.encode(), status=401))

    with pytest.raises(ProviderError) as info:
        await provider.acomplete([{"role": "user", "content": "hi"}])
    events = [e async for e in provider.stream([{"role": "user", "content": "hi"}])]

    assert len(upstream.chat_requests()) == 3  # the upstream was reached and echoed the key
    err = info.value
    texts = [str(err), err.message, repr(err), *(repr(e) for e in events)]
    assert "Incorrect API key provided" in str(err)
    assert REDACTED in str(err)
    files = list(dump_dir.iterdir())
    assert len(files) == 2 and err.dump_id is not None
    places = {"an error": texts, "the log": [r.getMessage() for r in caplog.records],
              "a dump": [f.read_text() for f in files]}  # fmt: skip
    found = {(place, what) for place, texts_there in places.items() for what, form in forms.items()
             if any(form in t for t in texts_there)}  # fmt: skip
    assert not found, found


# ---------------------------------------------------------------------------
# The provider as a library: dumps by default
# ---------------------------------------------------------------------------


async def test_provider_without_a_store_writes_to_the_default_directory(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hive_mcp.provider import LiteLLMProvider, ProviderError

    default = tmp_path / "dump-dir-from-env"
    monkeypatch.setenv("HIVE_MCP_DUMP_DIR", str(default))
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url,
                               retry=FAST_RETRY)  # fmt: skip
    upstream.script(Reply.error(400, "bad request"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete([{"role": "user", "content": "hi"}])
    assert info.value.dump_id is not None
    assert [p.name for p in default.iterdir()] == [f"{info.value.dump_id}.json"]
    assert TEST_KEY.encode() not in (default / f"{info.value.dump_id}.json").read_bytes()


def test_default_directory_follows_hive_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hive_mcp.provider import LiteLLMProvider

    monkeypatch.delenv("HIVE_MCP_DUMP_DIR")
    monkeypatch.setenv("HIVE_HOME", str(tmp_path / "hive"))
    store = LiteLLMProvider(model="openai/gpt-4o-mini", api_key=TEST_KEY).dump_store
    assert isinstance(store, DumpStore) and store.directory == tmp_path / "hive" / "failed_requests"


async def test_dump_store_false_writes_no_dump(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hive_mcp.provider import LiteLLMProvider, ProviderError

    default = tmp_path / "dump-dir-from-env"
    monkeypatch.setenv("HIVE_MCP_DUMP_DIR", str(default))
    provider = LiteLLMProvider(model="openai/gpt-4o-mini", api_key=TEST_KEY, api_base=upstream.base_url,
                               retry=FAST_RETRY, dump_store=False)  # fmt: skip
    upstream.script(Reply.error(400, "bad request"))
    with pytest.raises(ProviderError) as info:
        await provider.acomplete([{"role": "user", "content": "hi"}])
    assert provider.dump_store is None and info.value.dump_id is None
    assert not default.exists()


# ---------------------------------------------------------------------------
# Every form a secret is given in (the server's own set: hive_mcp.build.server_secrets)
# ---------------------------------------------------------------------------

URL_PASSWORD = "pw-in-the-url-0123456789"
BASE_URL = (
    f"http://user:{URL_PASSWORD}@127.0.0.1:9/v1?api-key=qk-0123456789&code=qc-0123456789"
    "&sig=qs%2B0123456789&tenant=qt-0123456789&api-version=2024-10-21"
)


def test_a_url_carries_its_password_and_every_query_value_but_the_version() -> None:
    from hive_mcp.redact import url_secrets

    found = set(url_secrets(BASE_URL))
    assert {URL_PASSWORD, "qk-0123456789", "qc-0123456789", "qs+0123456789", "qs%2B0123456789", "qt-0123456789"} <= found
    assert "2024-10-21" not in found
    assert url_secrets("http://lone-token-0123456789@host/v1") == ("lone-token-0123456789",)
    assert url_secrets(None) == () and url_secrets("http://host/v1") == ()


def test_the_server_keeps_every_form_secret(tmp_path: Path) -> None:
    from hive_mcp.backends import server_secrets
    from hive_mcp.settings import Settings

    token_file = tmp_path / "tokens"
    token_file.write_text("bob:tok-bob-file-0123456789\n")
    settings = Settings(
        transport="http", api_base=BASE_URL, auth_token="alice:tok-alice-env-0123456789", auth_token_file=token_file,
        api_key=SPECIAL_KEY,
    )
    secrets = server_secrets(settings, None, settings.auth_tokens())
    for value in (URL_PASSWORD, "qk-0123456789", "qc-0123456789", "tok-alice-env-0123456789", "tok-bob-file-0123456789"):
        assert value in secrets, value
    for what, form in encoded_forms(SPECIAL_KEY).items():  # every downstream of the set gets the encoded forms
        assert REDACTED in redact_text(form, secrets), what


def test_a_log_line_naming_the_base_url_keeps_none_of_its_secrets() -> None:
    from hive_mcp.redact import RedactingFilter, url_secrets

    record = logging.LogRecord("hive_mcp", logging.INFO, __file__, 1, "model %s at %s", ("openai/x", BASE_URL), None)
    try:
        raise RuntimeError(f"connection to {BASE_URL} failed")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter(url_secrets(BASE_URL)).filter(record)
    line = logging.Formatter("%(message)s").format(record)
    for secret in (URL_PASSWORD, "qk-0123456789", "qc-0123456789", "qs%2B0123456789", "qt-0123456789"):
        assert secret not in line, (secret, line)
    assert "openai/x" in line and "127.0.0.1:9/v1" in line and "api-version=2024-10-21" in line
