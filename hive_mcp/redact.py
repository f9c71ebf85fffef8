"""Credentials out of text: configured secret values and key shapes, in one place.

Two rules, applied together wherever text leaves the process (error lines, logs,
dumps):

- by value: every configured secret (the API key, and every credential the
  environment holds, see `credential_values`) is replaced by plain substring
  replacement, longest first, so a secret containing another goes whole;
  a server's secret set also holds each secret's encoded forms (`secret_forms`:
  percent-encoded, and base64 at each byte alignment, as a Basic header or an
  upstream's echo carries it), added once where the set is built, since
  substring replacement finds only the forms it is given; and in text holding a
  percent-escape, every secret of the set is also looked for with the escapes
  decoded (`percent.replace_escaped`), which finds it however it was percent-encoded
  (either hex case, any of its characters escaped);
- by shape: strings that look like keys whatever their source (`sk-...`,
  `sk-ant-...`, `AIza...`, `gsk_...`, `hf_...`, GitHub tokens, AWS access key ids,
  JWTs, `Bearer xxx`, credential-named query values, userinfo in URLs), matched
  by ONE compiled pattern in one scan.

Every branch of the pattern starts with a literal character, so the regex engine
skips ahead to the few characters that can start a match instead of trying every
position: the scan is cheap enough to run over a whole serialized dump.

No shape can match a quote or a backslash, and the boundary checks also accept a
JSON escape (`\\n`, `\\"`, `\\u0007`) before a key, so the same pattern applied
to JSON text finds everything it finds in the decoded strings and never breaks
the JSON (see `redact_json`).

Imports only the leaf `percent`, so provider, server and store all use it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

from .percent import find_escaped, replace_escaped

__all__ = [
    "CREDENTIAL_NAMES",
    "CREDENTIAL_SUFFIXES",
    "MIN_SECRET_LEN",
    "REDACTED",
    "credential_values",
    "find_key",
    "is_credential_name",
    "json_escaped",
    "json_safe",
    "normalize_secrets",
    "redact",
    "redact_json",
    "redact_text",
    "secret_forms",
    "strip_credentials",
    "url_secrets",
    "RedactingFilter",
]

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8
"""Shorter secrets are ignored: redacting every "password" or "test" would gut the text."""
MIN_BASE64_FORM_LEN = 12
"""Shorter base64 forms are dropped: a few base64 characters occur in ordinary words."""

# ---------------------------------------------------------------------------
# Key shapes
# ---------------------------------------------------------------------------

_KEY_CHARS = "A-Za-z0-9_-"
_CREDENTIAL_WORDS = "key|token|secret|sig|signature|password|passwd|pwd|auth|credential|session"


def _starts(literal: str, rest: str, word: str = _KEY_CHARS) -> str:
    """A branch that begins with `literal` where no `word` character precedes it.

    The check sits after the literal (a lookbehind over it) so the branch still
    starts with a literal and fails at once where the literal is absent; a JSON
    escape before the key counts as a boundary, since in the decoded string that
    character is a newline, tab or quote.
    """
    c = re.escape(literal)
    boundary = rf"(?:(?<![{word}]{c})|(?<=\\[nrtbf\"\\]{c})|(?<=\\u[0-9a-fA-F]{{4}}{c}))"
    return f"{c}{boundary}{rest}"


_WS = r"(?:\s|\\[nrt])+"  # whitespace, raw or JSON-escaped
_QUERY_NAME = rf"(?i:(?:[A-Za-z0-9]+[_.-])*(?:api[_-]?key|{_CREDENTIAL_WORDS})(?:[_.-][A-Za-z0-9]+)*)"
_QUERY_VALUE = r"""[^&#\s"'<>\\]+"""

_AWS_SECRET = r"""[\s"'\\]*[=:][\s"'\\]*[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"""
"""After the name: the separator (quotes and escapes of a JSON or INI file around it), then the 40 characters."""

_SHAPES = re.compile(
    "|".join(
        (
            _starts("sk-", rf"(?:ant-[{_KEY_CHARS}]{{10,}}|[{_KEY_CHARS}]{{16,}})"),  # OpenAI, Anthropic
            _starts("AIza", rf"[{_KEY_CHARS}]{{35}}"),  # Google
            _starts("AKIA", r"[0-9A-Z]{16}(?![0-9A-Za-z])"),  # AWS access key id
            _starts("ASIA", r"[0-9A-Z]{16}(?![0-9A-Za-z])"),  # AWS temporary access key id
            _starts("gsk_", r"[A-Za-z0-9]{20,}"),  # Groq
            _starts("gh", r"[oprsu]_[A-Za-z0-9_]{20,}"),  # GitHub
            _starts("github_pat_", r"[A-Za-z0-9_]{20,}"),
            _starts("hf_", r"[A-Za-z0-9]{20,}"),  # Hugging Face
            _starts("eyJ", rf"[{_KEY_CHARS}]{{8,}}\.[{_KEY_CHARS}]{{8,}}\.[{_KEY_CHARS}]{{8,}}"),  # JWT
            _starts("B", rf"(?i:earer){_WS}[A-Za-z0-9._~+/-]{{8,}}=*", "A-Za-z0-9_"),  # in any case
            _starts("b", rf"(?i:earer){_WS}[A-Za-z0-9._~+/-]{{8,}}=*", "A-Za-z0-9_"),
            rf"\?{_QUERY_NAME}={_QUERY_VALUE}",
            rf"&{_QUERY_NAME}={_QUERY_VALUE}",
            r"""://[^\s/?#@"'<>\\]+@""",  # userinfo
            # A private key block, whole (its body is the key); to the text's end when its END line is missing.
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[\s\S]*)",
            # AWS's secret access key, by the names its files and environment give it (its value has no shape).
            *(rf"{name}{_AWS_SECRET}" for name in ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")),
        )
    )
)
_BEARER_PREFIX = re.compile(rf"(?i:bearer){_WS}")


def _replace_shape(m: re.Match[str]) -> str:
    """What a match becomes: the credential goes, the words around it that say what it was stay."""
    found = m.group()
    first = found[0]
    if first in "?&":
        return found[: found.index("=") + 1] + REDACTED
    if first == ":":
        return "://" + REDACTED + "@"
    if first in "bB":
        prefix = _BEARER_PREFIX.match(found)
        return (prefix.group() if prefix else "Bearer ") + REDACTED
    return REDACTED


# ---------------------------------------------------------------------------
# Secrets by value
# ---------------------------------------------------------------------------


def normalize_secrets(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """Usable secrets, longest first so a secret containing another is replaced whole (ties in text order, so
    the same secrets give the same tuple in every process, whatever its hash seed)."""
    found = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN and s != REDACTED}
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _encoded(secret: str) -> set[str]:
    """The other forms `secret` may be written in: percent-encoded (in a URL or a form body, with upper- and
    lower-case hex: a stream's pieces are searched for these forms alone, see `provider.echoes`), and in base64
    (standard and URL-safe alphabets) the characters that depend on its bytes alone, for each of the three
    byte offsets it may start at inside a longer encoded string (`user:key` in a Basic header). At an
    offset the first group mixes in the bytes before it, and a partial last group the bytes after it
    (or the padding): both are dropped, so the form is found whatever surrounds the secret."""
    percent = (quote(secret, safe=""), quote_plus(secret))
    found = {*percent, *(_HEX_ESCAPE.sub(lambda m: m.group().lower(), p) for p in percent)}
    raw = secret.encode()
    for k in range(3):
        end = -4 if (k + len(raw)) % 3 else None
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            form = encode(b"\0" * k + raw).decode("ascii")[4 if k else 0 : end]
            if len(form) >= MIN_BASE64_FORM_LEN:
                found.add(form)
    found.discard(secret)
    return found


def secret_forms(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """`secrets` (normalized) with every encoded form of each (`_encoded`), longest first.

    Called where a secret set is built (the server's, the provider's), not by `normalize_secrets`, which
    runs on every call: forms are worked out once. A value that is itself a form of another in the set
    gets no forms of its own, so a set already holding the forms (the server's, handed to the provider)
    comes back as it is rather than growing forms of forms.
    """
    found = normalize_secrets(secrets)
    forms = {s: _encoded(s) for s in found}
    derived = set().union(*forms.values())
    return normalize_secrets((*found, *(f for s in found if s not in derived for f in forms[s])))


def _replace_values(text: str, secrets: tuple[str, ...], in_json: bool = False) -> tuple[str, bool]:
    """`text` with each secret replaced, as it is and percent-encoded; written as JSON writes it if `in_json`."""
    changed = False
    for secret in secrets:
        written = json_escaped(secret) if in_json else secret
        if written in text:
            text = text.replace(written, REDACTED)
            changed = True
    text, escaped = replace_escaped(text, secrets, REDACTED, in_json=in_json)
    return text, changed or escaped


def _redact_text(text: str, secrets: tuple[str, ...]) -> str:
    text, _ = _replace_values(text, secrets)
    return _SHAPES.sub(_replace_shape, text)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret in `secrets` and every key-shaped string replaced."""
    return _redact_text(text, normalize_secrets(secrets))


def find_key(text: str, secrets: Iterable[str | None] = ()) -> bool:
    """Whether `text` holds something `redact_text` would replace: a secret of `secrets` or a key shape."""
    found = normalize_secrets(secrets)
    return any(s in text for s in found) or find_escaped(text, found) or _SHAPES.search(text) is not None


def json_escaped(secret: str) -> str:
    """How `secret` appears inside a JSON string written by `json.dumps(..., ensure_ascii=False)`."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def redact_json(text: str, secrets: Iterable[str]) -> tuple[str, bool]:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) redacted in one scan; and whether it changed.

    Equivalent to redacting every decoded string: JSON escaping maps each character
    on its own, so a string containing a secret is written containing the secret's
    escaped form, which is what is replaced here. A replacement cannot break the
    JSON unless a secret's escaped form starts or ends inside an escape sequence:
    callers that must write valid JSON re-parse when this reports a change.
    """
    text, changed = _replace_values(text, tuple(secrets), in_json=True)
    text, n = _SHAPES.subn(_replace_shape, text)
    return text, changed or n > 0


# ---------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------

_PLAIN_QUERY = re.compile(r"(?:api[-_.]?)?version", re.I)
"""The one query parameter of a base URL that is not a secret: the API version (Azure's `api-version`).
Every other one may carry a key under any name (`key`, `code`, `sig`, `token`, a tenant's own)."""


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The secrets a configured URL carries: its userinfo's password (or a lone user, itself a token) and
    every query value but the API version, each also as it is written percent-encoded."""
    if not url:
        return ()
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return ()
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, _, password = userinfo.partition(":")
        found.append(password or user)
    found += [v for k, v in query if not _PLAIN_QUERY.fullmatch(k)]
    raw = [v for k, _, v in (p.partition("=") for p in parts.query.split("&")) if not _PLAIN_QUERY.fullmatch(k)]
    return tuple(dict.fromkeys(v for v in (*found, *raw) if v))


def strip_credentials(url: str | None) -> str | None:
    """Drop userinfo, every query param but the API version, and the fragment from a URL.

    An api_base is useful in a log line or a dump (which endpoint failed?) but
    proxies often carry a key in it. Anything unparseable is replaced whole
    rather than guessed at.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if _PLAIN_QUERY.fullmatch(k)]
        return urlunsplit((parts.scheme, host, parts.path, urlencode(query), ""))
    except ValueError:
        return REDACTED


# ---------------------------------------------------------------------------
# Log records
# ---------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """A handler's filter: each record's message and traceback with the secrets and key shapes replaced,
    whichever logger (ours, litellm's, the SDK's, uvicorn's) wrote it."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = normalize_secrets(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = _redact_text(record.stack_info, self.secrets)
        return True


# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------

_SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "apikey",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "x-auth-token",
        "cookie",
        "set-cookie",
        "password",
        "client-secret",
        "aws-secret-access-key",
        "aws-session-token",
    }
)
"""Dict keys whose values are always credentials (compared lower-cased, `_` read as `-`)."""


def _is_sensitive_key(key: str) -> bool:
    return key.lower().replace("_", "-") in _SENSITIVE_KEYS


def _json_safe_scalar(obj: Any) -> Any:
    """Turn what json.dumps cannot write into something it can, losing as little as possible."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    return repr(obj)


def _walk(obj: Any, on_str: Callable[[str], str] | None) -> Any:
    """A JSON-safe copy of `obj`: credential-named keys' values replaced whole, strings through `on_str`."""
    if isinstance(obj, str):
        return obj if on_str is None else on_str(obj)
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="python")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = k if isinstance(k, str) else str(k)
            if on_str is not None:
                key = on_str(key)
            out[key] = REDACTED if _is_sensitive_key(key) else _walk(v, on_str)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_walk(v, on_str) for v in obj]
    return _walk(_json_safe_scalar(obj), on_str)


def redact(obj: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A JSON-safe copy of `obj` with secrets, credential-named keys and key-shaped strings replaced."""
    found = normalize_secrets(secrets)
    return _walk(obj, lambda s: _redact_text(s, found))


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy of `obj` with credential-named keys' values replaced; strings as they are.

    For callers that redact the serialized text in one scan afterwards (`redact_json`).
    """
    return _walk(obj, None)


# ---------------------------------------------------------------------------
# Credentials in the environment
# ---------------------------------------------------------------------------

CREDENTIAL_SUFFIXES = ("_API_KEY", "_APIKEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_CREDENTIALS")
"""Variable names ending so hold credentials: `_KEY` covers `_SECRET_ACCESS_KEY`, `_ACCESS_KEY`,
`_SECRET_KEY`, `_ACCOUNT_KEY`; litellm's own provider variables all end one of these ways
(OPENAI_API_KEY, AZURE_API_KEY, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, HF_TOKEN,
AZURE_CLIENT_SECRET, WATSONX_APIKEY, VERTEXAI_CREDENTIALS, ...) except the few in
`CREDENTIAL_NAMES`."""

CREDENTIAL_NAMES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK", "HCP_VAULT_APPROLE_SECRET_ID"})
"""Credentials litellm reads whose names do not end like `CREDENTIAL_SUFFIXES`."""

_PATH = re.compile(r"(?:/|~/|\.{1,2}/|[A-Za-z]:[\\/])")
_NUMBER = re.compile(r"[+-]?[0-9][0-9_.,]*")
_JSON_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token", "api_key", "token")


def is_credential_name(name: str) -> bool:
    """Whether an environment variable of this name holds a credential."""
    upper = name.upper()
    return upper in CREDENTIAL_NAMES or upper.endswith(CREDENTIAL_SUFFIXES)


def _is_secret_value(value: str) -> bool:
    """A value worth redacting: at least 8 characters, not a number, not an existing file's path.

    Shorter values (`true`, `1`, `us-east`) and numbers under credential names are
    settings, and so is `GOOGLE_APPLICATION_CREDENTIALS=/path/key.json`; redacting
    them would mangle ordinary text and protect nothing. A path is recognised by
    the file existing, not by its look: a base64 secret may start with `/`.
    """
    if len(value) < MIN_SECRET_LEN or _NUMBER.fullmatch(value):
        return False
    return not (_PATH.match(value) and os.path.exists(os.path.expanduser(value)))


def _parts(value: str) -> list[str]:
    """The credentials inside one value: a JSON credentials blob's key fields
    (e.g. VERTEXAI_CREDENTIALS), or each item of a comma-separated list (HIVE_MCP_AUTH_TOKEN)."""
    if not value.startswith("{"):
        return [p.strip() for p in value.split(",")] if "," in value else []
    try:
        data = json.loads(value)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    return [v for k in _JSON_SECRET_FIELDS if isinstance(v := data.get(k), str)]


def credential_values(*environs: Mapping[str, str | None]) -> tuple[str, ...]:
    """Every credential value in these mappings (the environment, a `.env` file's entries), longest first.

    A credential is the value of a variable named by `is_credential_name` that
    passes `_is_secret_value`, also with surrounding whitespace dropped; for a
    comma-separated list, each item too; for a JSON credentials blob, its key fields.
    """
    found: list[str] = []
    for environ in environs:
        for name, value in environ.items():
            if not value or not is_credential_name(name):
                continue
            for candidate in (value, value.strip(), *_parts(value.strip())):
                if _is_secret_value(candidate):
                    found.append(candidate)
    return normalize_secrets(found)
