"""The server's secrets out of what an upstream says.

An upstream that echoes what it was sent (a proxy, a mock, a server gone wrong)
may put the key in its answer, its reasoning or a tool call. The provider hands
on no such text: every secret of the server (the provider's `secrets`, their
encoded forms included) is replaced by `REDACTED` before a reply or a stream
event leaves it, so no result, progress message, conversation or page holds it.
Only values are replaced, never key *shapes*: an `sk-...` the model writes as an
example is its answer.

Whole text is replaced in one scan, and a secret percent-encoded however the
encoder chose (`percent.replace_escaped`) with it. Text in pieces (a stream)
keeps back the end of a piece that is the start of a secret or of one of its
listed forms (`redact.secret_forms`: percent-encoded in either hex case, base64),
three characters or more of it, until the next piece tells whether the secret
follows; a secret percent-encoded otherwise is found within a piece, not across
two. A secret split within its first two characters has those sent already; the
rest of it is replaced when it comes. Holding back every piece that ends like a
secret's first letter would hold back most pieces of ordinary text for a whole chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..percent import replace_escaped
from ..redact import REDACTED, normalize_secrets

__all__ = ["HELD_FROM", "NO_SECRETS", "Pieces", "Scrubber"]

HELD_FROM = 3
"""How many characters of a secret a piece must end with to be kept back for the next."""


class Scrubber:
    """Replaces `secrets` in an upstream's text: `whole` for a reply, `pieces()` for one text of a stream."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = normalize_secrets(secrets)
        self._any = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None
        self._starts = {s[:n] for s in self.secrets for n in range(HELD_FROM, len(s))}
        self._longest = len(self.secrets[0]) if self.secrets else 0
        self._rests: dict[str, list[tuple[str, str]]] = {}
        """By first character: (head, rest) of each secret whose head (its first one or two characters) a
        piece may have sent before the rest arrived."""
        for s in self.secrets:
            for n in range(1, HELD_FROM):
                self._rests.setdefault(s[n], []).append((s[:n], s[n:]))

    def whole(self, text: str) -> str:
        return self._sub(text) if self._any is not None and text else text

    def _sub(self, text: str) -> str:
        """`text` with every secret replaced, as it is and percent-encoded."""
        text = self._any.sub(REDACTED, text) if self._any is not None else text
        return replace_escaped(text, self.secrets, REDACTED)[0]

    def pieces(self) -> Pieces:
        return Pieces(self)


class Pieces:
    """One text arriving in pieces (a stream's answer, or its reasoning), each piece scrubbed as it comes."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._s = scrubber
        self._held = ""
        self._sent = ""  # the last HELD_FROM - 1 characters handed on

    def feed(self, piece: str) -> str:
        s = self._s
        if s._any is None or not piece:
            return piece
        text, self._held = self._held + piece, ""
        for head, rest in s._rests.get(text[0], ()):
            if self._sent.endswith(head) and text.startswith(rest):
                text = REDACTED + text[len(rest) :]
                break
        text = s._sub(text)
        seen = self._sent + text
        for i in range(max(0, len(seen) - s._longest + 1), len(seen) - HELD_FROM + 1):
            if seen[i:] in s._starts:
                keep = min(len(seen) - i, len(text))
                text, self._held = text[: len(text) - keep], text[len(text) - keep :]
                break
        self._sent = (self._sent + text)[-(HELD_FROM - 1) :]
        return text

    def end(self) -> str:
        """What is still kept back when the text ends: the start of a secret that never came whole."""
        held, self._held = self._held, ""
        return held


NO_SECRETS = Scrubber(())
"""Replaces nothing: for text read where the server's secrets are not known."""
