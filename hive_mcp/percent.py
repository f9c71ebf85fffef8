"""Secrets written percent-encoded, found whatever the encoder chose to escape.

An encoder may escape any character (`%2D` for `-`, `%41` for `A`), write the hex
digits in either case (`%2F`, `%2f`), and write a space as `+`: no list of a
secret's forms covers them all. So the text is read with its escapes decoded,
each `%XX` as the one character of code XX, and each secret is looked for there;
a match is mapped back to the span of the text it was read from, which is what
is replaced. A secret holding a space is also looked for in the text read as a
form body, `+` as a space (a `+` is one character either way, so the mapping
is the same). A character beyond ASCII is escaped as its UTF-8 bytes, each then
read as one character: a secret is also looked for as its UTF-8 bytes read so
(`_images`), which finds it with all such characters escaped or none.

In JSON text (`in_json`), an escape reads as its character written as JSON
writes it (`%22` as `\\"`), and a secret is looked for as JSON writes it.

Cost: text without `%` is scanned once for it; text with escapes is decoded in
one pass, then searched once per secret, as plain replacement searches it.

A leaf: imports nothing from hive_mcp.
"""

from __future__ import annotations

import functools
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

__all__ = ["find_escaped", "replace_escaped"]

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PLAIN = tuple(chr(b) for b in range(256))
_JSON = tuple(json.dumps(c, ensure_ascii=False)[1:-1] for c in _PLAIN)
"""What each escape reads as: its character, or in JSON text its character as JSON writes it."""


@functools.lru_cache(maxsize=4096)
def _images(secret: str, in_json: bool) -> tuple[str, ...]:
    """What `secret` reads as in decoded text: itself, and its UTF-8 bytes one character each when it is not
    ASCII; as JSON writes them in JSON text."""
    found = [secret] if secret.isascii() else [secret, secret.encode().decode("latin-1")]
    if in_json:
        found = [json.dumps(s, ensure_ascii=False)[1:-1] for s in found]
    return tuple(s for s in dict.fromkeys(found) if s)


def _decoded(text: str, table: Sequence[str]) -> str | None:
    """`text` with each escape read as `table` says; None when it holds no escape.

    The escapes' hex digits are decoded all at once (`bytes.fromhex`), not one call per escape: text made
    mostly of escapes (a form body) costs a few times what plain text does, not tens."""
    if "%" not in text:
        return None
    parts = _ESCAPE.split(text)  # the text between escapes, and each escape's two hex digits, alternating
    if len(parts) == 1:
        return None
    codes = bytes.fromhex("".join(parts[1::2]))
    parts[1::2] = codes.decode("latin-1") if table is _PLAIN else [table[b] for b in codes]
    return "".join(parts)


def _views(text: str, secrets: Iterable[str], table: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The decoded readings of `text`, each with the secrets to look for in it: read as a URL, every secret;
    read as a form body (`+` a space, which keeps every position), those holding a space."""
    wanted = list(secrets)
    url = _decoded(text, table)
    views = [] if url is None else [(url, wanted)]
    spaced = [s for s in wanted if " " in s]
    if spaced and "+" in text:
        spaces = text.replace("+", " ")
        views.append((_decoded(spaces, table) or spaces, spaced))
    return views


def _matches(view: str, secrets: Iterable[str], in_json: bool) -> list[tuple[int, int]]:
    """Every occurrence in `view` of every image of every secret, as (start, end) in `view`."""
    spans = []
    for secret in secrets:
        for image in _images(secret, in_json):
            at = view.find(image)
            while at >= 0:
                spans.append((at, at + len(image)))
                at = view.find(image, at + len(image))
    return spans


def _in_text(text: str, table: Sequence[str], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` of the decoded view mapped back to `text`, overlapping ones merged, in order.

    Each escape is 3 characters of `text` and `len(table[code])` of the view; an end of a span inside an
    escape's reading (in JSON, a secret may start or end within `\\"`) widens the span to the whole escape.
    """
    starts: list[int] = []  # in the view, where each escape's reading starts
    ends: list[int] = []  # ... and ends
    text_ends: list[int] = []  # in `text`, where each escape ends
    shift = 0  # characters of `text` minus characters of the view, before the current escape
    for m in _ESCAPE.finditer(text):
        start = m.start() - shift
        width = len(table[int(m.group(1), 16)])
        starts.append(start)
        ends.append(start + width)
        text_ends.append(m.end())
        shift += 3 - width

    def start_in_text(p: int) -> int:
        k = bisect_right(starts, p) - 1
        if k < 0:
            return p
        return text_ends[k] - 3 if p < ends[k] else p + text_ends[k] - ends[k]

    def end_in_text(p: int) -> int:
        k = bisect_left(starts, p) - 1
        if k < 0:
            return p
        return text_ends[k] if p <= ends[k] else p + text_ends[k] - ends[k]

    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        a, b = start_in_text(a), end_in_text(b)
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def replace_escaped(text: str, secrets: Iterable[str], replacement: str, *, in_json: bool = False) -> tuple[str, bool]:
    """`text` with every percent-encoded occurrence of a secret replaced by `replacement`; and whether it changed.

    Occurrences written without an escape are the caller's plain replacement's to find: this finds them too,
    but only in text holding an escape somewhere.
    """
    table = _JSON if in_json else _PLAIN
    spans = [span for view, wanted in _views(text, secrets, table) for span in _matches(view, wanted, in_json)]
    if not spans:
        return text, False
    out, at = [], 0
    for a, b in _in_text(text, table, spans):
        out += (text[at:a], replacement)
        at = b
    out.append(text[at:])
    return "".join(out), True


def find_escaped(text: str, secrets: Iterable[str]) -> bool:
    """Whether `text` holds a secret of `secrets` percent-encoded (or, beside an escape, as it is)."""
    return any(image in view for view, wanted in _views(text, secrets, _PLAIN) for s in wanted
               for image in _images(s, False))
