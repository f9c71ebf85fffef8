"""Trees of real files for the tests of `hive_mcp.files`, and the calls on them: `attach` reads a tmp directory
as a root open to every caller, counting with litellm's own counter for COUNTED_AS."""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import pytest

from hive_mcp.files import Attached, FileRoots, FilesRefused, attach_files, parse_roots
from hive_mcp.provider.failure import count_text, count_tokens

COUNTED_AS = "gpt-4o"
count = functools.partial(count_text, COUNTED_AS)
"""litellm's count for the target model, as the provider counts a text: picklable, so the pool may use it."""

KEY = "sk-proj-" + "Q7m2Xk9LpR4tV8wZ1cB6nH3jD5fG0aYe"


def count_image(url: str) -> int | None:
    return count_tokens(COUNTED_AS, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])


def png(width: int = 8, height: int = 8) -> bytes:
    """A real PNG: the signature, IHDR, one IDAT of grey rows, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * 3 * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def everyone(root: Path) -> FileRoots:
    """`root` open to every caller, as over stdio."""
    return FileRoots.configured(parse_roots(str(root)), "stdio", root)


def attach(paths: list[str], root: Path, **kwargs: object) -> Attached:
    options: dict[str, object] = {"caller": "local", "roots": everyone(root), "count": count, "room": None}
    options.update(kwargs)
    return attach_files(paths, **options)  # type: ignore[arg-type]


def sent(result: Attached) -> list[str]:
    return [f.path for f in result.sent]


def skipped(result: Attached) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


def refusal(paths: list[str], root: Path, **kwargs: object) -> str:
    with pytest.raises(FilesRefused) as info:
        attach(paths, root, **kwargs)
    assert isinstance(info.value, ValueError)
    line = str(info.value)
    assert line.startswith("files: ") and "\n" not in line, line
    return line
