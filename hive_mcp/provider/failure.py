"""A call's one failure dump: the request as sent and every attempt, built once the call is over."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..dumps.format import FailureDump
from ..redact import strip_credentials
from .attempts import Attempts
from .base import CompletionRequest, Message, PromptSize, ProviderError, Usage
from .facts import config_facts, default_facts, price_of
from .offline import litellm
from .shaping import Shaped

if TYPE_CHECKING:
    from .routing import Deployment


def build_dump(
    shaped: Shaped, request: CompletionRequest, attempts: Attempts, error: ProviderError | None, *, stream: bool
) -> FailureDump | None:
    """The dump for a finished call; None when it succeeded first time (nothing to record)."""
    if not attempts.records:
        return None
    if error is None:
        outcome = "recovered"
        error_type = attempts.records[-1].error_type
    else:
        error_type = error.error_type
        # Retries that ran out are giving up; one attempt means it was never retried
        # (a permanent error, max_retries=0, or a stream whose text had gone out).
        outcome = "gave_up" if len(attempts.records) > 1 else "not_retried"
    tokens, method = estimate_tokens(shaped.model, shaped.messages)
    kwargs = shaped.kwargs
    # Routed, the endpoint is the deployment's of the last attempt (its config entry's api_base).
    deployment = attempts.route.deployment if attempts.route is not None else None
    api_base = deployment.api_base if deployment is not None else kwargs.get("api_base")
    return FailureDump(
        timestamp=datetime.now(timezone.utc),
        model=shaped.model,
        api_base=strip_credentials(api_base),
        error_type=error_type,
        outcome=outcome,
        attempts=attempts.records,
        estimated_tokens=tokens,
        token_estimate_method=method,
        message_count=len(shaped.messages),
        messages=shaped.messages,
        tools=kwargs.get("tools"),
        max_tokens=request.max_tokens,
        temperature=kwargs.get("temperature"),
        stream=stream,
        response_format=request.response_format,
        request_keys=sorted(k for k in kwargs if k != "api_key"),
    )


def count_tokens(model: str, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int | None:
    """litellm's count for `model` (its tokenizer where known, else an OpenAI one), image parts and `tools`
    definitions included; None if it fails."""
    try:
        return int(litellm.token_counter(model=model, messages=messages, tools=tools or None))
    except Exception:  # noqa: BLE001 - unknown: the caller decides
        return None


def prompt_size(model: str, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> PromptSize:
    """What a prompt weighs for `model`: `count_tokens`, else its UTF-8 bytes (`PromptSize`). Never None."""
    counted = count_tokens(model, messages, tools)
    return PromptSize(counted, counted=True) if counted is not None else PromptSize.in_bytes(messages, tools)


def prompt_owed(shaped: Shaped, deployment: Deployment | None) -> Usage:
    """What a reply that said nothing of its usage is charged: the prompt sent, as `prompt_size` weighs it for
    the model it went to (`deployment`'s; None: the call's own, unrouted), at that deployment's input price
    (the config's over litellm's map, `config_facts`; 0 unpriced)."""
    model = deployment.model if deployment is not None else shaped.model
    tokens = prompt_size(model, shaped.messages, shaped.kwargs.get("tools")).tokens
    price = price_of(config_facts(deployment.raw) if deployment is not None else default_facts(model))
    return Usage(input_tokens=tokens, cost_usd=tokens * price[0] if price is not None else 0.0)


def count_text(model: str, text: str) -> int | None:
    """litellm's count of a reply's `text` for `model`; None if it fails."""
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:  # noqa: BLE001 - unknown: the caller decides
        return None


def estimate_tokens(model: str, messages: list[Message]) -> tuple[int, str]:
    counted = count_tokens(model, messages)
    if counted is not None:
        return counted, "litellm.token_counter"
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // 4, "chars/4"
