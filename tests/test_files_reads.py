"""What reading a selected file lets through (`hive_mcp.files.examine`): an image is checked for keys and
configured secrets as a text file is, before it is sent. Real files in tmp directories."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest

from tests.files_trees import KEY, attach, count_image, png, sent, skipped, write

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
