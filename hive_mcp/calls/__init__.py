"""The completion call, transport-free: a `Call` goes down a chain of steps, an `Outcome` comes back.

    Admission      limits, the catalogue; the model resolved once          (admission.py)
    Files          the files it names, read, counted, sent first            (files.py)
    Conversations  lock, load and fit the thread; store the answer          (conversation.py)
    Metering       reserve the worst case; settle once the outcome is final (metering.py)
    Gather         a fan-out's calls: none sent unless all may be           (fanout.py, panel.py)
    Slot           one of the calls in flight, the caller's fair share      (send.py)
    Send           the provider, asked with a CompletionRequest             (send.py)

Each step is `async (call, next) -> Outcome`, run in a span of its own
(`tracing.py`); `standard_chain` puts them in order, and a step added (a task, a
fan-out) is one more link there.
Refusals (`hive_mcp.refusal.Refusal`) are raised; provider failures are outcomes.
The MCP layer builds the `Call`, supplies an `Observer` and maps the outcome;
it never sees the provider, and the provider never sees the call.
"""

from __future__ import annotations

from ..conversations import ConversationError
from ..files import FileAccess
from ..limits import Limits
from ..llms.catalogue import Catalogue
from ..provider.base import LLMProvider
from ..spend import Spend
from .admission import Admission
from .call import Call, Failure, Many, Outcome, Params, Progress, Thread
from .chain import Chain, Next, Step
from .conversation import Conversations
from .files import Files
from .fanout import Answer, Answers, gather, run
from .metering import Metering
from .observer import Observer
from .send import Send, Slot
from .tracing import traced

__all__ = [
    "Answer", "Answers", "Call", "Chain", "Conversations", "Failure", "Files", "Many", "Next", "Observer", "Outcome",
    "Params", "Progress", "Step", "Thread", "run", "standard_chain",
]  # fmt: skip

NO_CONVERSATIONS = "conversation_id: this server keeps no conversations (HIVE_MCP_CONVERSATIONS=off)"


async def _no_conversations(call: Call, next: Next) -> Outcome:
    """Without a conversation store: a call that names a conversation is refused; the rest pass."""
    if call.thread is not None:
        raise ConversationError(call.thread.id, NO_CONVERSATIONS)
    return await next(call)


def standard_chain(
    provider: LLMProvider, limits: Limits, catalogue: Catalogue, *, default_model: str,
    default_max_tokens: int | None = None, files: FileAccess | None = None, conversations: Conversations | None = None,
    spend: Spend | None = None,
) -> Chain:  # fmt: skip
    """Every completion call's steps, in order, each named for its span (`hive_mcp.<name>`). `files` is where
    calls may read (None: nowhere, a call that names files is refused). Run a call with `run(chain, call)`: one
    naming `many` fans out over the chain."""
    steps: list[tuple[str, Step]] = [
        ("admission", Admission(limits, catalogue, provider, default_model, default_max_tokens)),
        ("files", Files(provider, catalogue, files)),
        ("conversation", conversations if conversations is not None else _no_conversations),
        *([("budget", Metering(spend, limits.queue_timeout_s))] if spend is not None else []),
        ("gather", gather),
        ("queue", Slot(limits)),
    ]
    return Chain([traced(step, name) for name, step in steps], Send(provider))
