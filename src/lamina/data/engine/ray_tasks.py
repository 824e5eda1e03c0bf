"""What runs on Ray's workers; imported only once ``ray`` is known to be installed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

from lamina.data.embed.base import Embedder, Vectors
from lamina.data.engine.stages import Prepared, Preparer, Work, embed_counted


@ray.remote
def prepare_many(preparer: Preparer, works: Sequence[Work], board: Any = None) -> list[Prepared]:
    """Extract and chunk a few sources; a task, so a lost worker's share is simply run again.
    A long document's pages go to ``board`` (a ``PageBoard``) as they are read."""
    posted: list[Any] = []
    out = [preparer(w, _pages(board, w.source, posted) if board is not None else None) for w in works]
    ray.get(posted)  # every page posted before the result: the driver shows the last page first
    return out


def _pages(board: Any, source: str, posted: list[Any]) -> Callable[[int, int], None]:
    def on_page(done: int, total: int) -> None:
        if total > 1:  # not waited for here: progress never slows the reading
            posted.append(board.page.remote(source, done, total))

    return on_page


@ray.remote(num_cpus=0)
class PageBoard:
    """Where the workers post each long document's latest page, for the driver's progress."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, int]] = {}

    def page(self, source: str, done: int, total: int) -> None:
        self.pages[source] = (done, total)

    def drain(self) -> dict[str, tuple[int, int]]:
        pages, self.pages = self.pages, {}
        return pages


@ray.remote
class EmbedActor:
    """Holds one embedder: the model is loaded once per actor, not once per batch."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.busy_s = 0.0
        self.tokens = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> tuple[Vectors, int]:
        started = time.perf_counter()
        vectors, tokens = embed_counted(self.embedder, texts)
        self.busy_s += time.perf_counter() - started
        self.tokens += tokens
        self.texts += len(texts)
        return vectors, tokens

    def stats(self) -> dict[str, Any]:
        """What this actor did since it (last) started: for the per-actor throughput."""
        return {"pid": os.getpid(), "busy_s": self.busy_s, "tokens": self.tokens, "texts": self.texts}

    def pid(self) -> int:
        return os.getpid()
