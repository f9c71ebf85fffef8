"""One file read, sniffed and counted: what a worker process (or the calling thread) does with each file.

A file holding a key (what `redact_text` would replace, or a configured secret: never counted, never returned,
whatever its first bytes say), an image (by its first bytes: PNG, JPEG, GIF, WebP; sent whole as a data URL, so
its every byte is checked for a key first), binary (a NUL byte near the start, or not UTF-8), or text, returned
as the part that is sent (headed with its path) and counted once, whole, by the caller's `count`.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..redact import find_key, normalize_secrets

__all__ = ["Examined", "Job", "examine", "examine_batch", "header"]

Count = Callable[[str], "int | None"]
SNIFF_BYTES = 8192

_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
           (b"GIF89a", "image/gif"))  # fmt: skip
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))  # fmt: skip
"""How a selected file is opened (see `_read`); a flag the OS lacks is 0. Windows has only O_BINARY (its C library
translates no line ends), and there the identity check alone turns away a link made since."""
_CHUNK = 1 << 20
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F or b in b"\t\n\r" else 0x0A for b in range(256))
"""A byte table: printable ASCII kept, every other byte a line break (see `_holds_key`)."""


@dataclass(frozen=True)
class Job:
    """A file to examine: its resolved path, how the result names it, which file selection found there,
    (st_dev, st_ino), and the most bytes it may hold (HIVE_MCP_MAX_FILE_BYTES)."""

    path: str
    shown: str
    identity: tuple[int, int]
    limit: int


@dataclass(frozen=True)
class Examined:
    """What a file turned out to be. `text` is the part's text (a text file) or a data URL (an image)."""

    kind: Literal["text", "image", "binary", "key", "unreadable", "replaced", "over"]
    """`replaced`: not the file selected, or not a regular file, by the time it is read (the file is not read);
    `over`: it holds more than the job's limit by then (`size` is at least that much; the rest is not read)."""
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
    data = _read(job)
    if isinstance(data, Examined):
        return data
    size = len(data)
    mime = _image_type(data)
    if mime is not None:
        if _holds_key(data, secrets):
            return Examined("key", size=size)
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


def _read(job: Job) -> bytes | Examined:
    """The bytes of the file selection found at `job.path`, at most `job.limit` of them; what it is instead.

    Selection checked the path's root, type and size, then the file may change before it is read here. So the
    descriptor, not the path, is checked: opened without following a link as the last component (one made since
    points anywhere, out of the root too) and without waiting (a FIFO put in its place would block the open
    until a writer came), then required to be a regular file, the very one selected (its device and inode:
    which also catches a directory on the way swapped for a link, or another file renamed over it), and within
    the limit. The read stops one byte past it, so a file still growing is caught without being read whole."""
    try:
        fd = os.open(job.path, _OPEN_FLAGS)
    except OSError as exc:
        # ELOOP: the last component is now a link (O_NOFOLLOW); ENOENT: removed since it was selected.
        return Examined("replaced" if exc.errno in (errno.ELOOP, errno.ENOENT) else "unreadable")
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) != job.identity:
            return Examined("replaced")
        if found.st_size > job.limit:
            return Examined("over", size=found.st_size)
        chunks: list[bytes] = []
        left = job.limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return Examined("unreadable")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return Examined("over", size=len(data)) if len(data) > job.limit else data


def _holds_key(data: bytes, secrets: Sequence[str]) -> bool:
    """Whether bytes that are not read as UTF-8 (an image) hold a key shape or one of `secrets`.

    A key shape is printable ASCII: it is looked for in the file's printable ASCII runs (in a comment chunk,
    after the trailer, a text file that merely starts like a GIF), every other byte read as a line break, as
    `strings` reads a binary. Not in a latin-1 reading of every byte: there a URL in an image's metadata runs on
    through the compressed pixels to some `@` and reads as `://user@` (in 19 of 5,141 icons tried). A secret
    is looked for as the bytes its UTF-8 encoding is, which need not be ASCII."""
    if any(s.encode("utf-8") in data for s in normalize_secrets(secrets)):
        return True
    return find_key(data.translate(_PRINTABLE).decode("ascii"))


def _image_type(data: bytes) -> str | None:
    for magic, mime in _IMAGES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
