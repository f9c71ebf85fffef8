"""Rules for text: shortening for messages (one rule, so every truncated line ends the same way), and text made
valid Unicode.

A Python string can hold half of a UTF-16 surrogate pair: JSON's `\\ud83d` escape decodes to one, and an upstream
that cuts text by UTF-16 code units (a JavaScript proxy) can send the halves of an emoji in two chunks. Such a
string cannot be encoded as UTF-8, so it cannot be stored, counted or sent; `well_formed` and `Mender` make it the
text it spells. And one way to write a value as compact JSON text (`compact_json`), and one to read a file's bytes
as UTF-8 text, saying where they are not (`utf8_text`)."""

from __future__ import annotations

import json
import re
from typing import Any

ELLIPSIS = "..."
_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def compact_json(value: Any) -> str:
    """`value` as compact JSON, its text unescaped, as the SDK writes a message: one encoder for every call
    (`json.dumps` with these arguments builds one each time, on every streamed chunk and stored message)."""
    return _COMPACT.encode(value)


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and `...`, `limit` long in all."""
    return text if len(text) <= limit else text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def utf8_text(raw: bytes) -> str:
    """`raw` decoded as UTF-8; else a ValueError saying where it stops being UTF-8, for a message that names the
    file first: `line 2: not UTF-8 text (byte 0xe9 at offset 40); save the file as UTF-8`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, shortened to `limit` characters: how a message shows what it was given."""
    return shorten(repr(value), limit)


def one_line(text: str, limit: int) -> str:
    """`text` with every run of whitespace (newlines included) made one space, then shortened."""
    return shorten(_SPACE.sub(" ", text).strip(), limit)


def surrogate_in(text: str) -> str | None:
    """The first surrogate code point in `text`: half of a pair, which valid Unicode text never holds."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return found.group() if found else None


def well_formed(text: str) -> str:
    """`text` as valid Unicode: each surrogate pair the character it spells, each half alone U+FFFD."""
    if surrogate_in(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def well_formed_value(value: Any) -> Any:
    """`value` (parsed JSON) with every string in it, keys too, made `well_formed`."""
    if isinstance(value, str):
        return well_formed(value)
    if isinstance(value, dict):
        return {well_formed(k) if isinstance(k, str) else k: well_formed_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [well_formed_value(v) for v in value]
    return value


class Mender:
    """One text arriving in pieces, made `well_formed` piece by piece: a piece that ends in the first half of a
    pair keeps that half back for the next piece, so a pair split between two pieces is joined."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        if not self._held and piece.isascii():
            return piece
        piece, self._held = self._held + piece, ""
        if piece and "\ud800" <= piece[-1] <= "\udbff":  # the first half of a pair
            piece, self._held = piece[:-1], piece[-1]
        return well_formed(piece)

    def end(self) -> str:
        """What is still held at the end of the text: a half alone, as U+FFFD; else nothing."""
        held, self._held = self._held, ""
        return well_formed(held)
