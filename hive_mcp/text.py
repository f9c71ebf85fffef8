"""Shortening text for messages: one rule, so every truncated line ends the same way."""

from __future__ import annotations

import re

ELLIPSIS = "..."
_SPACE = re.compile(r"\s+")


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and `...`, `limit` long in all."""
    return text if len(text) <= limit else text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def one_line(text: str, limit: int) -> str:
    """`text` with every run of whitespace (newlines included) made one space, then shortened."""
    return shorten(_SPACE.sub(" ", text).strip(), limit)
