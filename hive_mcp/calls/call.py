"""The call and its outcome: one typed request down the chain, one typed outcome up.

A `Call` is built once, by whoever receives the request (the MCP tools), and is
never changed: a step that decides something (admission resolving the model, a
conversation fitting its thread) passes a copy on (`dataclasses.replace`). What
a call accumulates while it runs (whether the upstream was asked, the text it
produced, the deployment it is on, what runs once its outcome is final) lives in
its `Progress`, shared by every copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..files import DEFAULT_FIT, Attached, Fit
from ..provider.base import Answering, Cover, LLMResponse, Message, ModelRef, Tool, Usage
from ..spend.ledger import Charge
from .observer import Observer
from .panel import Seat

__all__ = ["After", "Call", "Failure", "Many", "Outcome", "Params", "Progress", "Thread"]


@dataclass(frozen=True)
class Params:
    """What the model is asked for besides the messages, as the caller gave it (None: the server's default)."""

    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[Tool, ...] | None = None
    response_format: dict[str, Any] | None = None
    json_mode: bool = False
    max_retries: int | None = None
    deadline_s: float | None = None
    include_reasoning: bool = False


@dataclass(frozen=True)
class Thread:
    """The conversation a call continues: its id, and whether it continues a copy (`fork`)."""

    id: str
    fork: bool = False


@dataclass(frozen=True)
class Many:
    """One question for several models at once (`calls.fanout`): each model's answer, then, with `judge`, that
    model's verdict on them (`judge_prompt` replacing the instruction it is given)."""

    models: tuple[str, ...]
    judge: str | None = None
    judge_prompt: str | None = None


@dataclass(frozen=True)
class Failure:
    """A call the provider failed for good: the one line shown, its category, its dump, its attempts, what it was
    billed."""

    text: str
    error_type: str
    dump_id: str | None = None
    billed: Usage | None = None
    attempts: int = 0
    upstream_wait_s: float | None = None
    """Seconds spent waiting on the upstream before it failed (None: unknown)."""


@dataclass(frozen=True)
class Outcome:
    """What a call came to: the provider's response, or its failure; and what the steps added to it."""

    response: LLMResponse | None = None
    failure: Failure | None = None
    conversation_id: str | None = None
    omitted_turns: int = 0
    """The oldest turns of the conversation left out of the request to fit the model's window."""
    not_stored: str | None = None
    """Why the answer went to no conversation when one was asked for (one line naming the store)."""
    budget_remaining_usd: float | None = None
    charged: Charge | None = None
    """What a failed call was charged (metering's `Spend.settle_short`; None: not metered)."""
    ref: ModelRef | None = None
    """The model the call went to, as admission resolved it (None: refused before)."""
    files: Attached | None = None
    """The files sent with the call, and those skipped with their reasons (None: it named none)."""

    @property
    def dump_id(self) -> str | None:
        if self.failure is not None:
            return self.failure.dump_id
        return self.response.dump_id if self.response is not None else None

    @property
    def attempts(self) -> int:
        if self.failure is not None:
            return self.failure.attempts
        return self.response.attempts if self.response is not None else 0


After = Callable[[Outcome | None], Awaitable[Outcome | None]]
"""Runs once the call's outcome is final (None: the call was cancelled or raised), shielded; returns it, amended."""


@dataclass
class Progress:
    """What one call has done so far, kept up to date while it runs, read by steps that must account for a call
    that ends early (a cancel, a failure, the deadline)."""

    asked: bool = False
    """The provider was called (the call left the queue)."""
    text: list[str] = field(default_factory=list)
    """The text the model produced, relayed or not."""
    answering: Answering = field(default_factory=Answering)
    """The group and deployment the latest attempt went to, kept by the provider as it routes."""
    failure: Failure | None = None
    afters: list[After] = field(default_factory=list)
    """What runs once the outcome is final, innermost step's first."""

    @property
    def sent(self) -> bool:
        """Whether the upstream was working on the request when the call ended (`Answering.working`, which the
        provider keeps): an attempt in flight when a cancel or the deadline cut it, one that timed out once its
        request went, or a 2xx reply not kept whose usage is unknown (one litellm could not read). A call whose
        attempts all ended in an error status or a connect timeout (one cancelled while it waits to retry after
        them) was not."""
        return self.asked and self.answering.working


@dataclass(frozen=True)
class Call:
    """One completion call, built once from the request; steps pass on amended copies."""

    caller: str
    messages: tuple[Message, ...]
    """The call's own new messages (a `prompt` is one user message)."""
    model: str | None = None
    """The model named by the call; None: the server's default. Admission resolves it into `ref`."""
    system: str = ""
    prompt: str | None = None
    """The prompt the call gave instead of messages (the input-size rule names it)."""
    params: Params = field(default_factory=Params)
    thread: Thread | None = None
    files: tuple[str, ...] = ()
    """Paths, directories and globs of files to send before the messages (the files step reads them)."""
    fit: Fit = DEFAULT_FIT
    """Files over the model's window: the call refused, or the largest left out."""
    stream: bool = False
    observer: Observer = field(default_factory=Observer)
    progress: Progress = field(default_factory=Progress, compare=False)
    many: Many | None = None
    """The models to ask instead of `model` (`calls.fanout.run` fans the call out)."""
    seat: Seat | None = None
    """The set of calls this one belongs to (a fan-out's branch or its judge): none is sent unless all may be."""
    tag: str = ""
    """What each message of its stream starts with (a fan-out's branch: its model's name and `: `)."""
    before_s: float = 0.0
    """How long the call may wait on other calls before it is queued (a judge: the models' deadline); what it
    holds outlasts that wait, and their queue, too."""
    keep: bool = True
    """Whether its answer becomes a conversation (a judge's does not: its input is the other answers)."""
    # Decided by the steps:
    ref: ModelRef | None = None
    """The model, resolved once by admission."""
    max_tokens: int = 0
    """What the model may write, as admission decided it (the request's max_tokens)."""
    deadline_s: float = 0.0
    """The deadline admission set, retries included."""
    send: tuple[Message, ...] | None = None
    """What goes to the model: the conversation's thread fitted, then `messages` (None: `messages` alone)."""
    conversation_id: str | None = None
    """The conversation the call's answer goes to (a new one's id is drawn before the call)."""
    new_conversation: bool = False
    """`conversation_id` is drawn for a conversation the call starts once it succeeds (a failure starts none)."""
    refused_groups: dict[str, str] = field(default_factory=dict, compare=False)
    """Fallback groups a budget refused -> the one-line refusal: no fallback goes there."""
    cover: Cover | None = field(default=None, compare=False)
    """Awaited by the provider before a retry that follows a billed reply, with everything billed so far;
    raising stops the call (`CompletionRequest.cover`). Set when the call holds a budget's reservation."""

    @property
    def model_name(self) -> str:
        assert self.ref is not None, "admission resolves the model first"
        return self.ref.name

    @property
    def scope_keys(self) -> dict[str, str]:
        """What the kinds of budget scope (`spend.budgets.SCOPES`) may read of the call besides its caller and the
        model groups it may reach, which the ledger knows already: none yet. Metering hands them on."""
        return {}

    @property
    def outgoing(self) -> list[Message]:
        """The messages the model receives."""
        return list(self.send if self.send is not None else self.messages)
