"""A text cut into parts that each fit a token limit, by the model's own counter, joined back exactly."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["split_parts"]

_SHRINK = 0.9
"""A guess over the limit is cut to this share of what would fit at its own tokens-per-character rate."""
_WORD_END = 0.25
"""How far back from a cut (a share of the part) a line or word end is looked for."""


def _cut(text: str, start: int, end: int) -> int:
    """Where to end a part of `text[start:end]`: after the last line end, else word end, in its last quarter."""
    floor = end - int((end - start) * _WORD_END)
    for mark in ("\n", " "):
        at = text.rfind(mark, max(floor, start + 1), end)
        if at != -1:
            return at + 1
    return end


def split_parts(text: str, limit: int, count: Callable[[str], int]) -> list[int]:
    """Where each part of `text` starts (the first at 0): every part counts at most `limit` by `count` (the
    model's tokenizer), ends at a line or word end where one is near, and the parts join back into `text`.
    Blocking (the counter): call it off the event loop."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    bounds = [0]
    start, guess = 0, len(text)
    while True:
        end = min(len(text), start + guess)
        tokens = count(text[start:end])
        while True:
            while tokens > limit:
                # Scale the span by what fits at its own rate, a little short; never less than one character.
                end = start + max(1, min(end - start - 1, int((end - start) * limit / tokens * _SHRINK)))
                tokens = count(text[start:end])
            if end == len(text):
                return bounds
            cut = _cut(text, start, end)
            if cut == end:
                break
            end, tokens = cut, count(text[start:cut])  # a shorter span is rarely more tokens; checked all the same
            if tokens <= limit:
                break
        guess = (end - start) * 5 // 4 + 1  # the next part starts from this one's size, not from the whole rest
        start = end
        bounds.append(start)
