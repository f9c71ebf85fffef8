"""Fixtures of the tests that run `python -m hive_mcp` as a subprocess: a plugin of `tests/conftest.py`, so its
fixtures reach every test module that starts such servers; `dump_dir_for` is imported.

The fixtures are module-scoped: a module's servers (each one imports litellm, so each is started once) share
its work directory and its scripted upstream. The end-to-end tests name theirs `e2e_upstream`, emptied before
each test; the HTTP surface's tests name theirs `sec_upstream`, and empty it themselves where it matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.upstream import Upstream

__all__ = ["dump_dir_for", "e2e_upstream", "fresh_upstream", "sec_upstream", "workdir"]


@pytest.fixture(scope="module")
def workdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's directory for its servers' logs, dumps and hive home (a module's own `workdir` outranks it)."""
    return tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])


def dump_dir_for(workdir: Path, transport: str) -> Path:
    return workdir / f"dumps-{transport}"


def module_upstream() -> Iterator[Upstream]:
    """One scripted upstream for the tests and servers of a module."""
    with Upstream() as up:
        yield up


e2e_upstream = pytest.fixture(module_upstream, scope="module", name="e2e_upstream")
sec_upstream = pytest.fixture(module_upstream, scope="module", name="sec_upstream")


@pytest.fixture
def fresh_upstream(e2e_upstream: Upstream) -> None:
    """Tests share one upstream: start each with an empty script and cleared events (a module takes it with
    `pytestmark = pytest.mark.usefixtures("fresh_upstream")`)."""
    e2e_upstream.unscript()  # a failed test must not leave replies for the next one
    e2e_upstream.chunk_sent.clear()
    e2e_upstream.client_gone.clear()
