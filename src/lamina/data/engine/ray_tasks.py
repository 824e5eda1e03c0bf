"""What runs on Ray's workers; imported only once ``ray`` is known to be installed."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import ray

from lamina.data.embed.base import Embedder, Vectors
from lamina.data.engine.stages import Prepared, Preparer, Work, embed_counted


@ray.remote
def prepare_many(preparer: Preparer, works: Sequence[Work]) -> list[Prepared]:
    """Extract and chunk a few sources; a task, so a lost worker's share is simply run again."""
    return [preparer(w) for w in works]


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
