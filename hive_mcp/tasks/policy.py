"""When `complete` or `stream_complete` becomes a task without being asked: the rule, in one place.

A 2026-07-28 client that declared the tasks extension gets a task for a call predicted to be long, so the call
cannot die at the client's request timeout (often 60 s, not reset by progress in several hosts):

* the model reasons (litellm's `supports_reasoning` for it, as `list_models` reports it): reasoning models
  routinely think for minutes on a hard question; or
* the input is large: at least `LONG_INPUT_CHARS` characters of prompt, messages and system text (about
  `LONG_INPUT_CHARS / 4` tokens), the size at which a large-context model's first token alone takes tens of
  seconds.

Any other call answers directly, as it would without tasks: a task costs the client at least one more round
trip. A 2025-11-25 client asks for a task itself (`task` on `tools/call`) and gets one whenever it asks.
"""

from __future__ import annotations

__all__ = ["LONG_INPUT_CHARS", "runs_long"]

LONG_INPUT_CHARS = 200_000


def runs_long(*, reasoning: bool, input_chars: int) -> bool:
    """Whether a completion call should run as a task unasked (see the module's rule)."""
    return reasoning or input_chars >= LONG_INPUT_CHARS
