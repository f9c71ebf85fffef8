"""Cheap insurance against a poisoned install: the code's own pin, and no start-up hook in site-packages.

litellm 1.82.7 and 1.82.8 were malicious releases (a hijacked maintainer
account; 1.82.8 shipped a `.pth` file that ran at every Python start). The
rule for the declared pin: exact (`==`), at or after 1.84.0 (proxy CVEs fixed
there), and none of the known-bad releases. Each check is a function run on
the real pyproject and site-packages, and also on inputs that break the rule,
so a check that could never fail would show.
"""

from __future__ import annotations

import re
import site
import sysconfig
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BAD_LITELLM = {"1.82.7": "a malicious release", "1.82.8": "a malicious release (a .pth start-up hook)",
               "1.92.0": "broke tool calls without the proxy extra"}
OLDEST_LITELLM = (1, 84, 0)

# Written by setuptools and by our own editable install; nothing else may run code at start-up.
ALLOWED_PTH = (re.compile(r"distutils-precedence\.pth"), re.compile(r"__editable__\.hive_mcp-[\w.]+\.pth"))


def litellm_pin_problems(pyproject: str) -> list[str]:
    """What is wrong with the litellm requirement declared in a pyproject.toml's text (empty: nothing)."""
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    pins = [d for d in deps if re.match(r"litellm\b", d)]
    if len(pins) != 1:
        return [f"expected one litellm requirement, found {pins}"]
    match = re.fullmatch(r"litellm==(\d+)\.(\d+)\.(\d+)", pins[0].replace(" ", ""))
    if match is None:
        return [f"litellm must be pinned exactly (litellm==X.Y.Z), not {pins[0]!r}"]
    pinned = ".".join(match.groups())
    problems = []
    if pinned in BAD_LITELLM:
        problems.append(f"litellm {pinned} is {BAD_LITELLM[pinned]}")
    if tuple(int(g) for g in match.groups()) < OLDEST_LITELLM:
        problems.append(f"litellm {pinned} is older than {'.'.join(map(str, OLDEST_LITELLM))}")
    return problems


def unexpected_pth_files(site_dir: Path) -> list[str]:
    """The `.pth` files in `site_dir` that are not ours or setuptools'."""
    return sorted(p.name for p in site_dir.glob("*.pth") if not any(r.fullmatch(p.name) for r in ALLOWED_PTH))


def site_dirs() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return sorted(Path(p) for p in paths if Path(p).is_dir())


def test_the_declared_litellm_pin_follows_the_rule() -> None:
    assert litellm_pin_problems((ROOT / "pyproject.toml").read_text()) == []


@pytest.mark.parametrize(
    ("requirement", "problem"),
    [
        ("litellm>=1.110", "pinned exactly"),
        ("litellm~=1.110.2", "pinned exactly"),
        ("litellm==1.82.8", "malicious"),
        ("litellm==1.82.7", "malicious"),
        ("litellm==1.92.0", "tool calls"),
        ("litellm==1.80.5", "older than 1.84.0"),
    ],
)
def test_the_pin_rule_refuses_what_it_must(requirement: str, problem: str) -> None:
    pyproject = f'[project]\nname = "x"\ndependencies = ["mcp>=2.3.0,<2.4", "{requirement}"]\n'
    problems = litellm_pin_problems(pyproject)
    assert any(problem in p for p in problems), problems


def test_litellm_is_installed_at_the_declared_pin() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("litellm"))
    assert version("litellm") == pin.split("==")[1]


def test_site_packages_has_no_unexpected_pth_file() -> None:
    dirs = site_dirs()
    assert dirs, "no site-packages directory found"
    assert {str(d): unexpected_pth_files(d) for d in dirs} == {str(d): [] for d in dirs}


def test_the_pth_check_finds_a_start_up_hook(tmp_path: Path) -> None:
    (tmp_path / "distutils-precedence.pth").write_text("import os\n")
    (tmp_path / "__editable__.hive_mcp-0.1.0.pth").write_text(str(ROOT) + "\n")
    assert unexpected_pth_files(tmp_path) == []
    (tmp_path / "litellm_init.pth").write_text("import base64; exec(base64.b64decode('cHJpbnQoMSk='))\n")
    assert unexpected_pth_files(tmp_path) == ["litellm_init.pth"]
