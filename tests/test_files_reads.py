"""What reading a selected file lets through (`hive_mcp.files.examine`): an image is checked for keys and
configured secrets as a text file is, before it is sent; a file that grows, is replaced (by a link out of the
root, another file, a FIFO) between its selection and its reading is refused or skipped, never read as it is
then. Real files in tmp directories."""

from __future__ import annotations

import base64
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from pathlib import Path
from typing import Any

import pytest

import hive_mcp.files.attach as attaching
from hive_mcp.files import CountPool, FileLimits
from hive_mcp.files.examine import Examined, Job, examine
from tests.files_trees import KEY, attach, count, count_image, png, refusal, sent, skipped, write

REPLACED = "replaced or removed since it was selected (not read)"

GIF = bytes.fromhex("47494638396101000100800000ffffff0000002c00000000010001000002024401003b")
"""A real 1x1 GIF89a: header, screen descriptor, a two-colour table, one image, the trailer."""


def with_text_chunk(image: bytes, text: str) -> bytes:
    """`image` (a PNG) with a tEXt chunk before its IEND, as an editor writes a comment into it."""
    data = b"Comment\x00" + text.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return image[:-12] + chunk + image[-12:]


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- images holding a key -----------------------------------------------------------------------

KEYED_IMAGES = {
    "looks.gif": b"GIF89a\nOPENAI_API_KEY=" + KEY.encode() + b"\n",  # a text file that starts like a GIF
    "comment.png": with_text_chunk(png(), f"api key {KEY}"),
    "tail.gif": GIF + b"\x00\xff" + KEY.encode(),  # after the trailer, among bytes that are not text
}


@pytest.mark.parametrize("name", KEYED_IMAGES)
def test_an_image_holding_a_key_is_skipped_and_the_key_goes_nowhere(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: KEYED_IMAGES[name], "a.py": "x = 1\n"})
    for vision in (True, False):
        result = attach([name, "a.py"], tmp_path, vision=vision, count_image=count_image)
        assert sent(result) == ["a.py"] and "key" in skipped(result)[name]
        assert KEY not in repr(result) and encoded(KEYED_IMAGES[name])[:40] not in repr(result)


def test_an_image_holding_a_configured_secret_is_skipped(tmp_path: Path) -> None:
    secret = "correct-horse-battery-stäple-42"  # not ASCII: found as the bytes the file holds it in
    write(tmp_path, {"shot.png": with_text_chunk(png(), f"pw {secret}")})
    result = attach(["shot.png"], tmp_path, vision=True, secrets=(secret,))
    assert sent(result) == [] and "key" in skipped(result)["shot.png"]


def test_images_without_a_key_are_still_sent_to_a_vision_model(tmp_path: Path) -> None:
    linked = with_text_chunk(with_text_chunk(png(), "Author: http://example.org"), "©Ada@home")
    images = {"dot.gif": GIF, "shot.png": png(32, 32), "linked.png": linked}
    write(tmp_path, images)  # linked.png: read byte for byte as latin-1, its URL runs on to the `@` as `://user@`
    result = attach(list(images), tmp_path, vision=True, count_image=count_image)
    assert sent(result) == list(images) and skipped(result) == {}
    urls = [p["image_url"]["url"] for p in result.parts if p["type"] == "image_url"]
    assert urls == [
        "data:image/gif;base64," + encoded(GIF),
        "data:image/png;base64," + encoded(images["shot.png"]),
        "data:image/png;base64," + encoded(linked),
    ]


# -- a file that changes between selection and reading ------------------------------------------
# Selection decides a file's root, type and size; reading comes after, in a worker. What the file is by then
# is what is read, so each change is made at that moment: `after_selection` runs it as selection returns.


def after_selection(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Run `change` once the files are selected and before any is read."""
    chosen = attaching.select

    def select_then_change(*args: Any, **kwargs: Any) -> Any:
        selection = chosen(*args, **kwargs)
        change()
        return selection

    monkeypatch.setattr(attaching, "select", select_then_change)


def test_a_file_that_grows_past_the_limit_after_selection_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"log.txt": "started\n"})

    def grow() -> None:
        with open(tmp_path / "log.txt", "a") as f:
            f.write("y" * 5_000_000)

    after_selection(monkeypatch, grow)
    line = refusal(["log.txt"], tmp_path, limits=FileLimits(max_file_bytes=1000, max_total_bytes=2000))
    assert line == "files: log.txt is 5,000,008 bytes, over the 1,000 a file may be (HIVE_MCP_MAX_FILE_BYTES)"


def test_files_that_grow_past_the_total_after_selection_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"a.txt": "a\n", "b.txt": "b\n"})
    after_selection(monkeypatch, lambda: write(tmp_path, {"a.txt": "a" * 900, "b.txt": "b" * 900}))
    line = refusal(["*.txt"], tmp_path, limits=FileLimits(max_file_bytes=1000, max_total_bytes=1500))
    assert line == "files: 2 files take 1,800 bytes, over the 1,500 a call may attach (HIVE_MCP_MAX_FILES_BYTES)"


def swap_for_link(tmp_path: Path) -> None:
    os.remove(tmp_path / "root" / "notes.txt")
    os.symlink(tmp_path / "outside" / "secret.txt", tmp_path / "root" / "notes.txt")


def swap_directory(tmp_path: Path) -> None:
    """The file's directory becomes a link out of the root, holding a file of the same name."""
    os.rename(tmp_path / "root" / "docs", tmp_path / "gone")
    os.symlink(tmp_path / "outside", tmp_path / "root" / "docs")


def swap_for_file(tmp_path: Path) -> None:
    """Another file renamed over it, as a link out of the root could not be: content it was not chosen as."""
    write(tmp_path / "root", {"other.txt": "OUTSIDE written since\n"})
    os.replace(tmp_path / "root" / "other.txt", tmp_path / "root" / "notes.txt")


@pytest.mark.parametrize("swap, name", [
    (swap_for_link, "notes.txt"), (swap_directory, "docs/secret.txt"), (swap_for_file, "notes.txt"),
])  # fmt: skip
@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_replaced_after_selection_is_skipped_not_read_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: Callable[[Path], None], name: str, workers: int
) -> None:
    write(tmp_path, {"outside/secret.txt": "OUTSIDE the root\n", "root/notes.txt": "fine\n",
                     "root/docs/secret.txt": "fine\n", "root/a.py": "x = 1\n"})  # fmt: skip
    root = tmp_path / "root"
    after_selection(monkeypatch, lambda: swap(tmp_path))
    pool = CountPool(workers=workers, min_bytes=0) if workers else None
    try:
        result = attach([name, "a.py"], root, pool=pool)
        assert pool is None or pool.used  # read in the pool's processes, with what selection found
    finally:
        if pool is not None:
            pool.close()
    assert sent(result) == ["a.py"] and skipped(result) == {name: REPLACED}
    assert "OUTSIDE" not in repr(result)


def test_a_file_replaced_by_a_fifo_after_selection_is_skipped_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"pipe.txt": "fine\n", "a.py": "x = 1\n"})

    def to_fifo() -> None:
        os.remove(tmp_path / "pipe.txt")
        os.mkfifo(tmp_path / "pipe.txt")

    after_selection(monkeypatch, to_fifo)
    with ThreadPoolExecutor(1) as ex:
        future = ex.submit(attach, ["pipe.txt", "a.py"], tmp_path)
        try:
            result = future.result(timeout=10)
        except TimeoutError:
            os.close(os.open(tmp_path / "pipe.txt", os.O_WRONLY))  # let the blocked reader go, then fail
            raise AssertionError("a FIFO was opened for reading and waited on") from None
    assert sent(result) == ["a.py"] and skipped(result) == {"pipe.txt": REPLACED}


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="a file whose size says 0: Linux's /proc")
def test_reading_stops_one_byte_past_the_limit_whatever_the_size_said() -> None:
    """The size a file's descriptor gives is a moment's: a file growing as it is read (here one whose size always
    says 0, and which holds more) is read to one byte past the limit, no further, and is over it."""
    found = os.stat("/proc/self/maps")
    assert found.st_size == 0
    job = Job("/proc/self/maps", "maps", (found.st_dev, found.st_ino), limit=10)
    assert examine(job, count) == Examined("over", size=11)
