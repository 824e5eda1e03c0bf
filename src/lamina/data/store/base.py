"""The vector-store seam: where chunks and their vectors live, and how they are searched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lamina.data.embed.base import Vectors
from lamina.data.types import Chunk, Hit


@dataclass(frozen=True)
class Where:
    """Metadata filter: a glob over ``source`` and/or one document (its id or its exact source)."""

    source_glob: str | None = None
    document: str | None = None

    def __bool__(self) -> bool:
        return bool(self.source_glob or self.document)


class ChunkStore(Protocol):
    def replace_documents(self, sources: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Make ``chunks`` the only chunks of ``sources``, in one atomic commit.

        A reader sees either the old chunks of every source in the batch or the new ones, never a
        mix, so a crash at any point leaves the store consistent.
        """
        ...

    def delete_sources(self, sources: Sequence[str]) -> None: ...

    def dense(self, vector: Vectors, k: int, where: Where | None = None) -> list[Hit]: ...

    def lexical(self, query: str, k: int, where: Where | None = None, title_boost: float = 0.0) -> list[Hit]:
        """BM25 over each chunk's indexed text, plus ``title_boost`` times BM25 over its title alone."""
        ...

    def vectors(self, chunk_ids: Sequence[str]) -> Vectors:
        """The stored vectors of these chunks, in the same order (for pseudo-relevance feedback)."""
        ...

    def count(self) -> int: ...

    def version(self) -> int:
        """Bumped by every write: answers cached for an older version are about changed documents."""
        ...

    def sources(self) -> dict[str, int]:
        """Chunk count per source, straight from the store (used to check it against the registry)."""
        ...

    def reused_vectors(self, embed_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Stored vectors keyed by ``Chunk.embed_hash``: identical embedding input is embedded once."""
        ...

    def optimize(self) -> None:
        """Fold recent writes into the indexes and compact files; safe to call at any time."""
        ...

    def drop(self) -> None: ...
