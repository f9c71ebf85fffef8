"""The provider core: one interface, one litellm-backed implementation. Free of MCP.

`LiteLLMProvider` is imported lazily: importing litellm costs seconds, and the
CLI's `--help` and `dumps` commands should not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Answering, CompletionRequest, LLMProvider, LLMResponse, Message, ProviderError, Tool, ToolCall, Usage
from .events import (
    FinishEvent,
    ReasoningDeltaEvent,
    StreamErrorEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
)
from .deferred import DeferredProvider
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .litellm import LiteLLMProvider

__all__ = [
    "Answering",
    "CompletionRequest",
    "Usage",
    "DeferredProvider",
    "LLMProvider",
    "LiteLLMProvider",
    "LLMResponse",
    "Message",
    "ProviderError",
    "RetryPolicy",
    "Tool",
    "ToolCall",
    "StreamEvent",
    "TextDeltaEvent",
    "ReasoningDeltaEvent",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "FinishEvent",
    "StreamErrorEvent",
]


def __getattr__(name: str) -> Any:
    if name == "LiteLLMProvider":
        from .litellm import LiteLLMProvider

        return LiteLLMProvider
    raise AttributeError(name)
