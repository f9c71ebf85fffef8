"""Reading and counting on every core: litellm's counter holds the GIL (two threads count no faster than one,
measured in bench/files.py), so files go to worker processes, in batches of about equal bytes.

The workers come from a forkserver that has imported the counter's module once (litellm takes seconds) and
prints to stderr only (`quiet`: under stdio, stdout is the protocol's), freeze
what they start with out of the collector's walks (as the server does after litellm's import), and stay for the
life of the pool; the first call that uses them waits for that start (`start()` does it ahead).
Little work (under `min_bytes`), or a counter that cannot be sent to another process, is done in the calling
thread. A pool whose workers died is replaced on the next call, after one warning; the call itself is done in
the calling thread.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat

from .examine import Count, Examined, Job, examine_batch

__all__ = ["POOL_MIN_BYTES", "CountPool"]

logger = logging.getLogger("hive_mcp.files")

QUIET = "hive_mcp.files.quiet"
"""Imported first in the forkserver, so it and every worker print to stderr, never to the protocol's stdout."""
POOL_MIN_BYTES = 512 * 1024
"""Less than this is read and counted in the calling thread: handing it to a process costs more than it saves."""
BATCHES_PER_WORKER = 2


class CountPool:
    """Worker processes that read and count files (`run`); one per server process, shut with `close`."""

    def __init__(self, workers: int | None = None, min_bytes: int = POOL_MIN_BYTES) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.min_bytes = min_bytes
        self.used = False
        """Whether any work has gone to the worker processes."""
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self, count: Count) -> None:
        """Start every worker now, with `count`'s module imported, rather than on the first call that needs them."""
        pool = self._pool(count)
        for started in [pool.submit(examine_batch, [], count) for _ in range(self.workers)]:
            started.result()

    def run(
        self, jobs: Sequence[Job], sizes: Sequence[int], count: Count, secrets: Sequence[str] = ()
    ) -> list[Examined]:
        """`examine` every job, in the order given: in the workers when there is enough to share."""
        indexed = list(enumerate(jobs))
        if sum(sizes) < self.min_bytes or self.workers < 2 or not _portable(count):
            return [e for _, e in examine_batch(indexed, count, secrets)]
        batches = _balanced(indexed, sizes, self.workers * BATCHES_PER_WORKER)
        try:
            done = list(self._pool(count).map(examine_batch, batches, repeat(count), repeat(tuple(secrets))))
        except BrokenProcessPool:
            logger.warning("the file-counting processes stopped; counting in this process until they are restarted")
            with self._lock:
                self._executor = None
            return [e for _, e in examine_batch(indexed, count, secrets)]
        self.used = True
        found = dict(pair for batch in done for pair in batch)
        return [found[i] for i in range(len(jobs))]

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _pool(self, count: Count) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([QUIET, _module_of(count)])
                self._executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_settle)
            return self._executor


def _settle() -> None:
    """A worker's start: quiet (if its forkserver was started by another, without it) and what it began with
    frozen out of the collector's walks."""
    importlib.import_module(QUIET)
    gc.freeze()


def _portable(count: Count) -> bool:
    try:
        pickle.dumps(count)
    except Exception:  # noqa: BLE001 - whatever pickling raises, the answer is no
        return False
    return True


def _module_of(count: Count) -> str:
    target = getattr(count, "func", count)  # a functools.partial's function
    return getattr(target, "__module__", None) or __name__


def _balanced(indexed: list[tuple[int, Job]], sizes: Sequence[int], n: int) -> list[list[tuple[int, Job]]]:
    """`indexed` in `n` batches of about equal bytes (largest first, each to the lightest batch)."""
    batches: list[list[tuple[int, Job]]] = [[] for _ in range(n)]
    loads = [0] * n
    for (i, job) in sorted(indexed, key=lambda pair: sizes[pair[0]], reverse=True):
        lightest = loads.index(min(loads))
        batches[lightest].append((i, job))
        loads[lightest] += sizes[i]
    return [b for b in batches if b]
