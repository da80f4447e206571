"""Side by side: each image pulled once in the background, the groups swapped a few at a time.

A swap spends most of its time waiting (the health gate, the stability window), so the groups of
one engine that share no container are swapped at the same time (UPDATE_CONCURRENCY; 1 with
ROLLING_RESTART), and the images are pulled while earlier groups wait for their gates. Limits
and why:

- a bounded pool of threads, one group per thread: a group is never split, so its order
  (dependencies first, each gated before the next starts) and its rollback stay its own;
- at most :data:`PULLS_PER_REGISTRY` pulls at a time per registry, so a registry (or its rate
  limit) is not hit by every image at once;
- every job runs in a copy of the caller's context, so the run's ``run_id`` (a structlog
  context variable) stays on every log line, whichever thread writes it;
- results come back in the order the jobs were given, never in the order they finished: the
  report reads the same from one run to the next.

Nothing here knows what a group or an image is: :mod:`actions.update` gives the functions.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PULLS_PER_REGISTRY = 2
_PULL_THREADS = 8


class Pulls(Generic[T]):
    """Each key (an image reference) pulled once, in the background, a few per registry.

    ``pull`` must not raise: it returns what the caller needs to know, failure included.
    """

    def __init__(self, pull: Callable[[str], T], pool: ThreadPoolExecutor) -> None:
        self._pull = pull
        self._pool = pool
        self._futures: dict[str, Future[T]] = {}
        self._registries: dict[str, threading.Semaphore] = {}

    def submit(self, key: str, registry: str) -> None:
        """Queue the pull of ``key`` from ``registry`` (once: a second submit is a no-op)."""
        if key in self._futures:
            return
        gate = self._registries.setdefault(registry, threading.Semaphore(PULLS_PER_REGISTRY))
        context = contextvars.copy_context()
        self._futures[key] = self._pool.submit(context.run, self._gated, gate, key)

    def _gated(self, gate: threading.Semaphore, key: str) -> T:
        """Pull ``key`` holding one of its registry's slots."""
        with gate:
            return self._pull(key)

    def wait(self, key: str) -> T:
        """What the pull of ``key`` returned, once it is done (it must have been submitted)."""
        return self._futures[key].result()


@contextmanager
def background_pulls(pull: Callable[[str], T]) -> Iterator[Pulls[T]]:
    """Pulls that run while the caller goes on; leaving waits for every pull still running."""
    with ThreadPoolExecutor(_PULL_THREADS, thread_name_prefix="wk-pull") as pool:
        yield Pulls(pull, pool)


def run_side_by_side(jobs: Sequence[Callable[[], R]], workers: int) -> list[R]:
    """Run ``jobs``, at most ``workers`` at a time, in the order given; their results in order.

    A job started before another is never started after it, so with ``workers`` = 1 this is
    the plain loop. Every job runs to its end even when another raised; the first exception,
    in job order, is raised once all are done (a swap in flight is never abandoned).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(min(workers, len(jobs)), thread_name_prefix="wk-swap") as pool:
        futures = [pool.submit(contextvars.copy_context().run, job) for job in jobs]
    return [future.result() for future in futures]
