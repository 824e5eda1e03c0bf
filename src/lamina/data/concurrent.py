"""Run one retrieval leg beside another: a hybrid search's BM25 leg overlaps its dense leg.

Both stores spend a leg's time outside the GIL (LanceDB in Rust, pgvector waiting on Postgres), so
on two cores a hybrid query costs about its slower leg instead of the sum. Under load, when every
pool thread is busy, a leg that has not started by the time the caller needs it runs in the
caller's thread instead: concurrency never makes a query wait for a queue.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

# threads start on first use and idle ones cost nothing; the bound keeps a burst from spawning many
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lamina-leg")


class Leg(Generic[T]):
    """``fn()`` started in the pool now; ``result()`` waits for it, or runs it here if not started."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        context = contextvars.copy_context()  # the caller's trace span stays the leg's parent
        self._future: Future[T] = _POOL.submit(context.run, fn)

    def result(self) -> T:
        if self._future.cancel():  # still queued behind busy threads: do not wait for one
            return self._fn()
        return self._future.result()
