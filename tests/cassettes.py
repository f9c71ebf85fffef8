"""The recorded provider replies in ../shared/cassettes: loading them, routing them through
litellm, and reading from each recorded body what a faithful client must get out of it.

The expectations are parsed from the recording itself (SSE, NDJSON, a JSON array or one
JSON body, in each provider's own wire format), so nothing here hard-codes a reply's text.
The recordings are data read at test time; they are never copied into this repository.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "cassettes"

# litellm's own prefix for each provider; "openai/" for the OpenAI-compatible rest
# (Hugging Face router, Z.ai, Ollama's /v1 endpoint).
PREFIX = {
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "together": "together_ai",
    "cerebras": "cerebras",
    "anthropic": "anthropic",
    "gemini": "gemini",
}

# What hive-mcp calls each HTTP status (hive_mcp/provider/retry.py).
CATEGORY_BY_STATUS = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found", 408: "timeout", 429: "rate_limit"}
# Categories the retry policy retries (an empty stream too: `RetryPolicy.stream_empty_retries`).
RETRYABLE = {"rate_limit", "transient", "connection", "timeout", "empty_stream"}


def names() -> list[str]:
    return sorted(p.stem for p in CASSETTES.glob("*.json")) if CASSETTES.is_dir() else []


def load(name: str) -> dict[str, Any]:
    return json.loads((CASSETTES / f"{name}.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Route:
    """How litellm is pointed at the local replay of one recording."""

    model: str  # with litellm's prefix
    api_base: str
    extra: dict[str, Any] = field(default_factory=dict)
    sent_model: str | None = None  # the name the request body must carry (None: it is in the path)


def route(recording: dict[str, Any], root: str, prefix: str | None = None) -> Route:
    """The litellm model and api_base that make litellm ask `root` for the recorded path."""
    provider = recording["provider"]
    url = urlparse(recording["path"])
    body = recording["request_body"] if isinstance(recording["request_body"], dict) else {}
    name = body.get("model")
    if provider == "gemini":
        match = re.search(r"/models/([^:/]+):", url.path)
        assert match, recording["path"]
        return Route(f"gemini/{match.group(1)}", root + url.path.split("/models/")[0])
    if provider == "azure":
        match = re.search(r"/deployments/([^/]+)/", url.path)
        assert match, recording["path"]
        version = parse_qs(url.query)["api-version"][0]
        return Route(f"azure/{match.group(1)}", root, {"api_version": version})
    if provider == "anthropic":
        return Route(f"anthropic/{name}", root, sent_model=name)
    if provider == "ollama" and url.path.startswith("/api/"):
        return Route(f"ollama_chat/{name}", root, sent_model=name)
    base = root + url.path.rsplit("/chat/completions", 1)[0]
    return Route(f"{prefix or PREFIX.get(provider, 'openai')}/{name}", base, sent_model=name)


# -- reading a recorded body ------------------------------------------------------------


@dataclass
class Expected:
    """What the recording says the model answered."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens read from the provider's cache
    reasoning: str = ""
    reasoning_tokens: int = 0
    refusal: str = ""
    content_filter: bool = False
    error_status: int | None = None  # an HTTP error status, or the status of an error inside a 200 stream
    error_message: str = ""
    error_reason: str = ""  # the provider's machine-readable reason, where it gives one
    filter_categories: list[str] = field(default_factory=list)  # what a content filter says it caught
    usage_elsewhere: bool = False  # usage where litellm does not read it (Groq's `x_groq.usage`)

    @property
    def category(self) -> str | None:
        """hive-mcp's category for the recorded error, from its status.

        Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID:
        that is an auth failure whatever the status says.
        """
        if self.error_status is None:
            return None
        if self.error_reason == "API_KEY_INVALID":
            return "auth"
        if self.error_status >= 500:
            return "transient"
        return CATEGORY_BY_STATUS.get(self.error_status, "bad_request")


def sse_data(text: str) -> list[tuple[str, str]]:
    """(event name, data) per SSE event; comments and empty events skipped."""
    out: list[tuple[str, str]] = []
    for block in re.split(r"\r?\n\r?\n", text):
        event, data = "", []
        for line in re.split(r"\r?\n", block):
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
        if data:
            out.append((event, "\n".join(data)))
    return out


def _json_objects(recording: dict[str, Any]) -> list[Any]:
    """The recorded body as the JSON objects it is made of."""
    text = recording["response_text"]
    stripped = text.lstrip()
    if stripped.startswith("data:") or stripped.startswith(":") or stripped.startswith("event:"):
        return [json.loads(d) for _, d in sse_data(text) if d.strip() != "[DONE]"]
    try:
        value = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]  # NDJSON
    return value if isinstance(value, list) else [value]


def expected(recording: dict[str, Any]) -> Expected:
    objects = _json_objects(recording)
    provider = recording["provider"]
    path = urlparse(recording["path"]).path
    if provider == "anthropic":
        exp = _anthropic(objects)
    elif provider == "gemini":
        exp = _gemini(objects)
    elif provider == "ollama" and path.startswith("/api/"):
        exp = _ollama(objects)
    else:
        exp = _openai(objects)
    if recording["status"] >= 400:
        exp.error_status = recording["status"]
        _error_fields(exp, objects[0] if objects else {})
    return exp


def _error_fields(exp: Expected, body: Any) -> None:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        exp.error_message = str(error.get("message") or "")
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and detail.get("reason"):
                exp.error_reason = str(detail["reason"])


def _openai(objects: list[Any]) -> Expected:
    exp = Expected()
    calls: dict[Any, list[str]] = {}  # key -> [name, arguments]
    usage: Any = None
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("error"), dict):  # an error inside a 200 stream
            code = obj["error"].get("status_code", obj["error"].get("code"))
            exp.error_status = code if isinstance(code, int) else 400
            exp.error_message = str(obj["error"].get("message") or "")
        # Groq streams its usage in `x_groq.usage` alone: the provider's own count all the same.
        usage = obj.get("usage") or (obj.get("x_groq") or {}).get("usage") or usage
        exp.usage_elsewhere = exp.usage_elsewhere or bool((obj.get("x_groq") or {}).get("usage"))
        for choice in obj.get("choices") or []:
            part = choice.get("delta") if "delta" in choice else choice.get("message")
            if choice.get("finish_reason") == "content_filter":
                exp.content_filter = True
                results = choice.get("content_filter_results") or {}
                exp.filter_categories += [k for k, v in results.items() if isinstance(v, dict) and v.get("filtered")]
            if not isinstance(part, dict):
                continue
            content = part.get("content")
            if isinstance(content, str):
                exp.text += content
            elif isinstance(content, list):  # Mistral's typed parts
                for piece in content:
                    if piece.get("type") == "text":
                        exp.text += piece.get("text") or ""
                    elif piece.get("type") == "thinking":
                        exp.reasoning += "".join(t.get("text") or "" for t in piece.get("thinking") or [])
            exp.reasoning += part.get("reasoning_content") or part.get("reasoning") or ""
            exp.refusal += part.get("refusal") or ""
            for i, fragment in enumerate(part.get("tool_calls") or []):
                key = fragment.get("index", fragment.get("id", i))
                entry = calls.setdefault(key, ["", ""])
                function = fragment.get("function") or {}
                entry[0] = entry[0] or function.get("name") or ""
                arguments = function.get("arguments")
                entry[1] += arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    exp.tool_calls = [(name, json.loads(args) if args else {}) for name, args in calls.values()]
    if isinstance(usage, dict):
        exp.input_tokens = usage.get("prompt_tokens")
        exp.output_tokens = usage.get("completion_tokens")
        exp.reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        exp.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return exp


def _anthropic(objects: list[Any]) -> Expected:
    """Messages API, whole or streamed. litellm reports prompt tokens as input plus cache
    reads plus cache writes, and that is what hive-mcp passes on as `input_tokens`."""
    exp = Expected()
    usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    for obj in objects:
        kind = obj.get("type")
        if kind == "message":  # a whole reply
            blocks = {i: dict(b) for i, b in enumerate(obj.get("content") or [])}
            usage.update(obj.get("usage") or {})
            exp.refusal = "refusal" if obj.get("stop_reason") == "refusal" else ""
        elif kind == "message_start":
            usage.update(obj["message"].get("usage") or {})
        elif kind == "content_block_start":
            blocks[obj["index"]] = dict(obj["content_block"], partial_json="")
        elif kind == "content_block_delta":
            block, delta = blocks[obj["index"]], obj["delta"]
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta.get("type") == "input_json_delta":
                block["partial_json"] += delta["partial_json"]
        elif kind == "message_delta":
            usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
            if (obj.get("delta") or {}).get("stop_reason") == "refusal":
                exp.refusal = "refusal"
    for block in (blocks[i] for i in sorted(blocks)):
        if block.get("type") == "text":
            exp.text += block.get("text") or ""
        elif block.get("type") == "thinking":
            exp.reasoning += block.get("thinking") or ""
        elif block.get("type") == "tool_use":
            raw = block.get("partial_json")
            exp.tool_calls.append((block["name"], json.loads(raw) if raw else block.get("input") or {}))
    if exp.refusal:  # Anthropic's refusal text is the reply's text
        exp.refusal = exp.text
    if "input_tokens" in usage:
        exp.input_tokens = sum(
            int(usage.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        )
        exp.output_tokens = usage.get("output_tokens")
        exp.cached_tokens = usage.get("cache_read_input_tokens")
    return exp


_GEMINI_FILTERS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}


def _gemini(objects: list[Any]) -> Expected:
    """generateContent, streamed or not. litellm's completion tokens are candidates plus
    thoughts (`thoughtsTokenCount`), and hive-mcp passes that on as `output_tokens`."""
    exp = Expected()
    meta: dict[str, Any] = {}
    for obj in objects:
        meta = obj.get("usageMetadata") or meta
        for candidate in obj.get("candidates") or []:
            if candidate.get("finishReason") in _GEMINI_FILTERS:
                exp.content_filter = True
                ratings = candidate.get("safetyRatings") or []
                exp.filter_categories += [r["category"] for r in ratings if r.get("blocked")]
            for part in (candidate.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    call = part["functionCall"]
                    exp.tool_calls.append((call["name"], call.get("args") or {}))
                elif part.get("thought"):
                    exp.reasoning += part.get("text") or ""
                else:
                    exp.text += part.get("text") or ""
    if meta:
        exp.input_tokens = meta.get("promptTokenCount", 0)
        exp.output_tokens = meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0)
        exp.reasoning_tokens = meta.get("thoughtsTokenCount", 0)
        exp.cached_tokens = meta.get("cachedContentTokenCount")
    return exp


def _ollama(objects: list[Any]) -> Expected:
    """Ollama's native /api/chat, one object or NDJSON lines; usage on the `done` line."""
    exp = Expected()
    for obj in objects:
        message = obj.get("message") or {}
        exp.text += message.get("content") or ""
        exp.reasoning += message.get("thinking") or ""
        for call in message.get("tool_calls") or []:
            exp.tool_calls.append((call["function"]["name"], call["function"].get("arguments") or {}))
        if obj.get("done"):
            exp.input_tokens = obj.get("prompt_eval_count")
            exp.output_tokens = obj.get("eval_count")
    return exp
