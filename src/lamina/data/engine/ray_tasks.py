"""What runs on Ray's workers; imported only once ``ray`` is known to be installed."""

from __future__ import annotations

import os
from collections.abc import Sequence

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

    def embed(self, texts: Sequence[str]) -> tuple[Vectors, int]:
        return embed_counted(self.embedder, texts)

    def pid(self) -> int:
        return os.getpid()
