"""What a call returns: the finished reply, its tool calls and its usage. A leaf of the provider
package, so the interface (`base`) and the stream events (`events`) both build on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LLMResponse", "ToolCall", "Usage"]


class ToolCall(BaseModel):
    id: str
    name: str
    input: dict[str, Any]


class Usage(BaseModel):
    """What a call used: the one usage shape of responses, stream finishes and tool results.

    `input_tokens` is what the provider bills as prompt tokens (cache reads and
    writes included, as litellm counts them); `output_tokens` includes reasoning
    tokens, which `reasoning_tokens` reports separately where the provider does.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        """Count `other`'s usage in this one too."""
        for name in Usage.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class LLMResponse(Usage):
    """A finished completion. `attempts` and `dump_id` say what it took to get it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    content: str = ""
    model: str = ""
    model_group: str | None = None
    """With a models config: the group called (an alias resolved); `model` is the deployment that answered."""
    answered_group: str | None = None
    """With a models config: the group whose deployment answered (a fallback group, or `model_group`)."""
    stop_reason: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    reasoning: str | None = None
    raw_response: Any = Field(default=None, exclude=True, repr=False)
    attempts: int = 1
    dump_id: str | None = None
    estimated: bool = False
    """The usage is litellm's count, not the provider's, in whole or in part (a stream cut at max_tokens, a reply
    before it that was not kept and said nothing of its usage)."""
    unpriced: bool = False
    """The deployment that answered has no known price and the reply stated no cost (`cost_usd` is then 0 and
    means nothing)."""
    cost_stated: bool = False
    """`cost_usd` is what the upstream said the reply cost (`replies.stated_cost`): what the caller is billed,
    charged as it is, whatever the price known for the model, or none."""
    upstream_wait_s: float = Field(default=0.0, exclude=True)
    """Seconds the call spent waiting on the upstream (requests, replies, backoff): its wall time minus this is
    hive-mcp's own overhead."""
