"""The one family of refusals: a call turned away before (or instead of) any upstream request.

Every rule that can refuse a call (a limit, the queue, a budget, a conversation,
the files a call names) raises a subclass; the call layer and the MCP layer catch
`Refusal` alone and show its `str()`, one line that names what refused it. A
refusal costs nothing and writes no dump.
"""

from __future__ import annotations

__all__ = ["Refusal"]


class Refusal(Exception):
    """A refused call. `field` names the argument or rule that refused it; `str()` is the one line shown."""

    field: str = "call"
