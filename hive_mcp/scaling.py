"""What serving on several processes or instances asks of the settings: stateless HTTP, and sane counts.

Several workers (`--workers N`) share one port, and a load balancer in front
of several instances sends each request wherever it likes: no process can hold
a session another one must find, so streamable HTTP is served stateless. The
legacy HTTP+SSE transport keeps its event stream and the POSTs that answer on
it in one process, so it cannot be served that way.

Kept free of heavy imports: the command line checks these before anything loads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["WORKERS_PER_CPU", "max_workers", "scaling_problem", "serves_stateless"]

WORKERS_PER_CPU = 4
"""More workers than this per CPU only compete for the cores (and each holds litellm, about 200 MB)."""


def max_workers() -> int:
    """The most workers allowed without --force: 4 per CPU this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return WORKERS_PER_CPU * max(cpus, 1)


def serves_stateless(settings: Settings) -> bool:
    """Whether streamable HTTP is served without sessions: asked for, or implied by several workers."""
    return settings.stateless or settings.workers > 1


def scaling_problem(settings: Settings) -> str | None:
    """Why `--workers` / `--stateless` cannot be served as configured (one line), or None."""
    if settings.workers > 1 and settings.transport != "http":
        return (
            f"--workers {settings.workers} needs --transport http: "
            + (
                "the legacy HTTP+SSE transport keeps each session's event stream and its POSTs in one process, "
                "so it cannot be served stateless by several workers"
                if settings.transport == "sse"
                else "stdio is one process talking to the client that started it"
            )
        )
    if settings.stateless and settings.transport == "sse":
        return (
            "--stateless needs --transport http: the legacy HTTP+SSE transport keeps each session's event stream "
            "and its POSTs in one process"
        )
    limit = max_workers()
    if settings.workers > limit and not settings.force:
        return (
            f"--workers {settings.workers} is more than {WORKERS_PER_CPU} per CPU ({limit} here): each worker "
            "loads litellm (about 200 MB) and they would only compete for the cores; pass --force to start anyway"
        )
    return None
