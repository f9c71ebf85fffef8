"""From a `CompletionRequest` to litellm's keyword arguments: messages, kwargs, credentials.

Pure apart from the credentials check (which asks litellm which variables a
model needs); no request is sent from here.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Any

from ..net import is_loopback
from ..redact import is_credential_name
from ..text import shorten
from .base import CompletionRequest, Message, ProviderError
from .offline import litellm

JSON_MODE_INSTRUCTION = "Please respond with a valid JSON object."
CODEX_MARKER = "chatgpt.com/backend-api/codex"
CODEX_DEFAULT_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Endpoint:
    """What the provider itself adds to every call: its model, credentials and litellm kwargs."""

    model: str
    api_key: str | None
    api_base: str | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class Shaped:
    """One call as litellm gets it. `empty_expected`: an empty reply is an answer here, not a fault."""

    model: str
    messages: list[Message]
    kwargs: dict[str, Any]
    codex: bool
    empty_expected: bool


def shape(endpoint: Endpoint, request: CompletionRequest, *, stream: bool, routed: bool = False) -> Shaped:
    """The messages and kwargs for `request`; raises ProviderError (auth) when no key is configured.

    `routed`: the model is a config's group, whose deployments bring their own credentials.
    """
    model = request.model or endpoint.model
    codex = CODEX_MARKER in (endpoint.api_base or "")
    messages = _messages(request, codex)
    last_role = next((m.get("role") for m in reversed(messages) if m.get("role") != "system"), None)
    empty_expected = last_role == "assistant" or (stream and last_role == "tool")

    kwargs: dict[str, Any] = {**endpoint.extra, **request.extra}
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    kwargs.update(model=model, messages=messages, num_retries=0, max_retries=0)
    # The server's key and base URL go with its own model's provider only (see `_check_elsewhere`).
    ours = routed or provider_of(model) == provider_of(endpoint.model)
    if endpoint.api_key and ours:
        kwargs["api_key"] = endpoint.api_key
    if endpoint.api_base and ours:
        kwargs["api_base"] = endpoint.api_base
    if request.tools:
        kwargs["tools"] = [t.to_openai() for t in request.tools]
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    if codex:
        kwargs.update(stream=True, store=False)
    else:
        kwargs["max_tokens"] = request.max_tokens
        if stream:
            kwargs.update(stream=True, stream_options={"include_usage": True})
    if not ours:
        _check_elsewhere(model)
    elif not routed:
        _check_credentials(model, kwargs)
    return Shaped(model=model, messages=messages, kwargs=kwargs, codex=codex, empty_expected=empty_expected)


def _messages(request: CompletionRequest, codex: bool) -> list[Message]:
    """The messages sent: ghosts dropped, the system prompt (and JSON-mode instruction) first."""
    messages = [m for m in request.messages if not _is_ghost(m)]
    system = request.system
    has_system_message = any(m.get("role") == "system" for m in messages)
    if request.json_mode:
        if system or not has_system_message:
            system = f"{system}\n\n{JSON_MODE_INSTRUCTION}" if system else JSON_MODE_INSTRUCTION
        else:
            messages = _append_to_first_system(messages, JSON_MODE_INSTRUCTION)
    if codex and not system and not has_system_message:
        system = CODEX_DEFAULT_SYSTEM
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def _check_credentials(model: str, kwargs: dict[str, Any]) -> None:
    """Fail before any request when no key is configured, naming the variable to set."""
    if kwargs.get("api_key"):
        return
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # noqa: BLE001 - an unknown provider: let the request tell
        return
    keys = [k for k in missing if "KEY" in k or "TOKEN" in k]
    if keys:
        names = " or ".join(keys)
        raise ProviderError(
            f"no API key configured: set {names} (or HIVE_MCP_API_KEY)", error_type="auth", model=model, attempts=0
        )


CREDENTIAL_ALIASES = {
    "bedrock": ("AWS_",), "sagemaker": ("AWS_",), "vertex_ai": ("VERTEXAI_", "GOOGLE_"),
    "huggingface": ("HF_", "HUGGINGFACE_"), "text-completion-openai": ("OPENAI_",), "together_ai": ("TOGETHERAI_",),
}  # fmt: skip
"""Providers whose environment variables are not named after them (litellm's names)."""


@functools.lru_cache(maxsize=1024)
def placed(model: str) -> str | None:
    """The litellm provider a model name goes to (`openai/x` and `gpt-4o` both `openai`); None when litellm
    cannot tell (a typo, a bare name missing from its model list, an unknown prefix). Remembered per name
    (litellm's answer depends on the name alone), the oldest forgotten first: a caller may name any model."""
    try:
        return str(litellm.get_llm_provider(model)[1])
    except Exception:  # noqa: BLE001 - litellm raises its own errors for names it cannot place
        return None


def provider_of(model: str) -> str:
    """`placed`, or the prefix (the whole name, without one) when litellm does not know the name."""
    return placed(model) or model.partition("/")[0]


def unknown_model(model: str) -> str | None:
    """Why no call to `model` can be sent, when litellm cannot place it (the refusal's text after `model: `):
    no provider's key or address would serve it. None for a name litellm places."""
    if placed(model) is not None:
        return None
    return (
        f"{shorten(model, 80)!r} is not a model litellm knows; name it provider/model (e.g. openai/gpt-4o-mini), "
        "or see list_models"
    )


def refused_unsent(own_model: str, model: str) -> bool:
    """Whether a call to `model`, on a server whose own model is `own_model` (no config), is refused before
    anything is sent (`_check_elsewhere`)."""
    if provider_of(model) == provider_of(own_model):
        return False
    try:
        _check_elsewhere(model)
    except ProviderError:
        return True
    return False


def _check_elsewhere(model: str) -> None:
    """A model of another provider than the server's: served with that provider's own settings from the
    environment, or refused (one line) when the environment names nothing of it, or only part; a name litellm
    cannot place (`unknown_model`) is refused as naming no model at all.

    "Names something of it": a credential or base URL variable of the provider
    (`ANTHROPIC_API_KEY`, `OLLAMA_API_BASE`). Without one, the call would go out
    with no credential, or to litellm's default address for the provider, which
    for several (ollama, llamafile, lemonade, docker_model_runner) is a port on
    this machine that nobody pointed the server at.
    """
    unknown = unknown_model(model)
    if unknown is not None:  # no variable named after the name would serve it
        raise ProviderError(f"model: {unknown}", error_type="not_found", model=model, attempts=0)
    provider = provider_of(model)
    prefixes = (provider.upper().replace("-", "_") + "_", *CREDENTIAL_ALIASES.get(provider, ()))
    named = [
        n for n, v in os.environ.items()
        if v and n.startswith(prefixes) and (is_credential_name(n) or n.endswith(("_API_BASE", "_BASE_URL")))
    ]  # fmt: skip
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # noqa: BLE001 - an unknown provider: nothing of it is named
        missing = []
    addressed = any(n.endswith(("_API_BASE", "_BASE_URL")) for n in named)
    if named and not missing and (addressed or _default_is_remote(model)):
        return
    wanted = " and ".join(missing) if missing else f"its key or address ({prefixes[0]}API_KEY or {prefixes[0]}API_BASE)"
    raise ProviderError(
        f"model: {model!r} is a {provider} model, and this server's key and address are only for its own "
        f"provider's; set {wanted} in the server's environment to serve it",
        error_type="auth", model=model, attempts=0,
    )  # fmt: skip


def _default_is_remote(model: str) -> bool:
    """Whether litellm's own address for `model`'s provider, when no base URL is given, is off this machine."""
    try:
        base = litellm.get_llm_provider(model)[3]
    except Exception:  # noqa: BLE001
        return False
    return not base or not is_loopback(urlsplit(str(base)).hostname or "localhost")


def _append_to_first_system(messages: list[Message], text: str) -> list[Message]:
    out = list(messages)
    for i, m in enumerate(out):
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            out[i] = {**m, "content": f"{m['content']}\n\n{text}"}
            return out
    return [{"role": "system", "content": text}, *out]


def _is_ghost(message: Message) -> bool:
    """An assistant turn with nothing in it: some providers reject these outright."""
    if message.get("role") != "assistant" or message.get("tool_calls"):
        return False
    content = message.get("content")
    if isinstance(content, list):
        return not any(part for part in content)
    return not (content or "").strip() if isinstance(content, str) or content is None else False
