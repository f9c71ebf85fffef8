"""Cheap insurance against a poisoned install (litellm 1.82.8 shipped a `.pth` that ran at every start)."""

from __future__ import annotations

import re
import sysconfig
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Written by setuptools and by our own editable install; nothing else may run code at start-up.
ALLOWED_PTH = (re.compile(r"distutils-precedence\.pth"), re.compile(r"__editable__\.hive_mcp-[\w.]+\.pth"))


def test_site_packages_has_no_unexpected_pth_file() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    unexpected = [p.name for p in site.glob("*.pth") if not any(r.fullmatch(p.name) for r in ALLOWED_PTH)]
    assert unexpected == []


def test_litellm_is_pinned_exactly_and_installed_at_the_pin() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if d.startswith("litellm")]
    assert len(pins) == 1 and re.fullmatch(r"litellm==\d+\.\d+\.\d+", pins[0])
    assert version("litellm") == pins[0].split("==")[1]
    assert version("litellm") not in ("1.82.7", "1.82.8")
