"""`attach_files`: a call's `files`, read, counted and sized to the model, as the user-message parts to send."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..defaults import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES_BYTES
from .examine import Count, Examined, Job, examine_batch, header, tokens_of
from .pool import CountPool
from .refusal import FilesRefused
from .roots import FileRoots
from .select import select

__all__ = [
    "DEFAULT_FIT", "IMAGE_TOKENS_UNKNOWN", "Attached", "FileLimits", "Fit", "SentFile", "SkippedFile", "attach_files",
]

Fit = Literal["refuse", "truncate"]
DEFAULT_FIT: Fit = "refuse"
"""Files over the model's window, unless the call says: the call refused, naming them."""
IMAGE_TOKENS_UNKNOWN = 1600
"""An image's tokens when no counter says: about what the largest image costs at Anthropic (1.15 MP), more
than OpenAI's high-detail 1024x1024 (765), so the window check errs on the side of refusing."""

_WHY = {
    "binary": "binary",
    "key": "holds a key or a configured secret (never sent)",
    "unreadable": "cannot be read",
    "replaced": "replaced or removed since it was selected (not read)",
}


@dataclass(frozen=True)
class FileLimits:
    """How much a call may attach: bytes per file and in all (HIVE_MCP_MAX_FILE_BYTES, HIVE_MCP_MAX_FILES_BYTES)."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_total_bytes: int = DEFAULT_MAX_FILES_BYTES


@dataclass(frozen=True)
class FileAccess:
    """What one server lets calls read: its roots, the limits, its own secrets (a file holding one is skipped),
    and the pool that reads and counts on every core (None: in the calling thread)."""

    roots: FileRoots
    limits: FileLimits = FileLimits()
    secrets: tuple[str, ...] = ()
    pool: CountPool | None = None


@dataclass(frozen=True)
class SentFile:
    path: str
    bytes: int
    tokens: int


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class Attached:
    """The files of a call: the user-message parts to send before the call's own messages (one text part per
    file headed with its path; an image as its header and an image part), what was sent and what was skipped."""

    parts: tuple[dict[str, Any], ...] = ()
    sent: tuple[SentFile, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()

    @property
    def tokens(self) -> int:
        """The tokens of every file sent, as counted for the target model."""
        return sum(f.tokens for f in self.sent)

    def message(self) -> dict[str, Any] | None:
        """The user message that carries the files; None when none is sent."""
        return {"role": "user", "content": list(self.parts)} if self.parts else None


@dataclass(frozen=True)
class _Ready:
    """A file that may be sent: its name, parts, bytes and tokens."""

    shown: str
    parts: tuple[dict[str, Any], ...]
    size: int
    tokens: int


def attach_files(
    paths: Sequence[str],
    *,
    caller: str,
    roots: FileRoots,
    count: Count,
    room: int | None,
    fit: Fit = DEFAULT_FIT,
    vision: bool = False,
    limits: FileLimits = FileLimits(),
    count_image: Callable[[str], int | None] | None = None,
    secrets: Sequence[str] = (),
    pool: CountPool | None = None,
) -> Attached:
    """The files `paths` names (paths, directories, globs) that `caller` may read under `roots`, read and counted.

    `count(text)` is litellm's token count for the target model (None: unknown, estimated as chars/4);
    `count_image(data_url)` an image's (None: IMAGE_TOKENS_UNKNOWN); `room` the tokens left for files (the
    model's input window less max_tokens and the call's messages; None: unknown, not checked); `vision` whether
    the target takes image parts; `secrets` the server's own, whose presence skips a file as a key shape does;
    `pool` reads and counts on every core (None: in this thread). Blocking: call it in a worker thread.

    Raises FilesRefused (one line, `files: ...`) before anything is sent: files off or no root open to
    `caller`, a path outside the caller's roots, a missing file, a file or all together over `limits`, and
    files that do not fit `room` unless `fit` is "truncate", which drops the largest first (listed as skipped).
    """
    if not paths:
        return Attached()
    selection = select(tuple(paths), roots.open_to(caller))
    files = selection.files
    _check_sizes([(f.shown, f.size) for f in files], limits)
    jobs = [Job(str(f.path), f.shown, f.identity, limits.max_file_bytes) for f in files]
    sizes = [f.size for f in files]
    if pool is not None:
        examined = pool.run(jobs, sizes, count, secrets)
    else:
        examined = [e for _, e in examine_batch(list(enumerate(jobs)), count, secrets)]
    # Again with what was read: a file may have grown since its size was taken (reading stops past the limit).
    _check_sizes([(f.shown, e.size) for f, e in zip(files, examined)], limits)
    skipped = [SkippedFile(shown, why) for shown, why in selection.skipped]
    ready: list[_Ready] = []
    for f, e in zip(files, examined):
        if e.kind == "text":
            ready.append(_Ready(f.shown, ({"type": "text", "text": e.text},), e.size, e.tokens))
        elif e.kind == "image" and vision:
            ready.append(_image(f.shown, e, count, count_image))
        elif e.kind == "image":
            skipped.append(SkippedFile(f.shown, "an image, and the model does not take images"))
        else:
            skipped.append(SkippedFile(f.shown, _WHY[e.kind]))
    ready, dropped = _fit(ready, room, fit)
    skipped += [SkippedFile(r.shown, f"dropped to fit the model's window ({r.tokens:,} tokens)") for r in dropped]
    return Attached(
        parts=tuple(part for r in ready for part in r.parts),
        sent=tuple(SentFile(r.shown, r.size, r.tokens) for r in ready),
        skipped=tuple(skipped),
    )


def _check_sizes(sizes: list[tuple[str, int]], limits: FileLimits) -> None:
    """Refuse the call if a file, or all of them together, are over `limits`: `sizes` is each file's shown name
    and bytes."""
    for shown, size in sizes:
        if size > limits.max_file_bytes:
            raise FilesRefused(
                f"{shown} is {size:,} bytes, over the {limits.max_file_bytes:,} a file may be "
                "(HIVE_MCP_MAX_FILE_BYTES)"
            )
    total = sum(size for _, size in sizes)
    if total > limits.max_total_bytes:
        raise FilesRefused(
            f"{len(sizes)} files take {total:,} bytes, over the {limits.max_total_bytes:,} a call may attach "
            "(HIVE_MCP_MAX_FILES_BYTES)"
        )


def _image(shown: str, e: Examined, count: Count, count_image: Callable[[str], int | None] | None) -> _Ready:
    title = f"{header(shown)}</file>"
    counted = None
    if count_image is not None:
        try:
            counted = count_image(e.text)
        except Exception:  # noqa: BLE001 - the caller's counter: unknown means estimate
            counted = None
    tokens = tokens_of(title, count) + (counted if counted is not None else IMAGE_TOKENS_UNKNOWN)
    parts = ({"type": "text", "text": title}, {"type": "image_url", "image_url": {"url": e.text}})
    return _Ready(shown, parts, e.size, tokens)


def _fit(ready: list[_Ready], room: int | None, fit: Fit) -> tuple[list[_Ready], list[_Ready]]:
    """The files that fit `room`, in order, and those dropped (largest first) with `fit: truncate`."""
    total = sum(r.tokens for r in ready)
    if room is None or total <= room:
        return ready, []
    if fit == "refuse":
        raise FilesRefused(
            f"{len(ready)} files take {total:,} tokens and {max(room, 0):,} fit (the model's input window less "
            "max_tokens and the messages): name fewer files, or pass fit: 'truncate' to drop the largest"
        )
    dropped: list[_Ready] = []
    for r in sorted(ready, key=lambda r: r.tokens, reverse=True):
        if total <= room:
            break
        dropped.append(r)
        total -= r.tokens
    gone = {id(r) for r in dropped}
    return [r for r in ready if id(r) not in gone], dropped
