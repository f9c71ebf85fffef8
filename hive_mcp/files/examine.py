"""One file read, sniffed and counted: what a worker process (or the calling thread) does with each file.

A file is an image (by its first bytes: PNG, JPEG, GIF, WebP), binary (a NUL byte near the start, or not
UTF-8), text holding a key (what `redact_text` would replace: never counted, never returned), or text, returned
as the part that is sent (headed with its path) and counted once, whole, by the caller's `count`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..redact import find_key

__all__ = ["Examined", "Job", "examine", "examine_batch", "header"]

Count = Callable[[str], "int | None"]
SNIFF_BYTES = 8192

_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
           (b"GIF89a", "image/gif"))  # fmt: skip


@dataclass(frozen=True)
class Job:
    """A file to examine: its resolved path and how the result names it."""

    path: str
    shown: str


@dataclass(frozen=True)
class Examined:
    """What a file turned out to be. `text` is the part's text (a text file) or a data URL (an image)."""

    kind: Literal["text", "image", "binary", "key", "unreadable"]
    text: str = ""
    tokens: int = 0
    size: int = 0


def header(shown: str) -> str:
    """The line a file's part starts with; the path is a JSON string, so no name can end it early."""
    return f"<file path={json.dumps(shown, ensure_ascii=False)}>"


def tokens_of(text: str, count: Count) -> int:
    """`count(text)`; chars/4 when the counter cannot count it (an unknown model), as the failure dumps estimate."""
    try:
        counted = count(text)
    except Exception:  # noqa: BLE001 - the caller's counter: unknown means estimate
        counted = None
    return counted if counted is not None else (len(text) + 3) // 4


def examine(job: Job, count: Count, secrets: Sequence[str] = ()) -> Examined:
    try:
        with open(job.path, "rb") as f:
            data = f.read()
    except OSError:
        return Examined("unreadable")
    size = len(data)
    mime = _image_type(data)
    if mime is not None:
        return Examined("image", f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", size=size)
    if b"\x00" in data[:SNIFF_BYTES]:
        return Examined("binary", size=size)
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        return Examined("binary", size=size)
    if find_key(content, secrets):
        return Examined("key", size=size)
    text = f"{header(job.shown)}\n{content.removeprefix(chr(0xFEFF))}\n</file>"
    return Examined("text", text, tokens_of(text, count), size)


def examine_batch(
    jobs: Sequence[tuple[int, Job]], count: Count, secrets: Sequence[str] = ()
) -> list[tuple[int, Examined]]:
    """`examine` each of `jobs`, keeping each one's index: one task of a worker process."""
    return [(i, examine(job, count, secrets)) for i, job in jobs]


def _image_type(data: bytes) -> str | None:
    for magic, mime in _IMAGES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
