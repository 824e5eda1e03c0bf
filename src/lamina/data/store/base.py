"""The vector-store seam: where chunks and their vectors live, and how they are searched."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from lamina.data.embed.base import Vectors
from lamina.data.filters import FieldFilter, matches_all
from lamina.data.types import Chunk, Hit, attrs_of


@dataclass(frozen=True)
class Where:
    """What a search may return: a glob over ``source``, one document (its id or its exact source),
    metadata conditions (``fields``, all must hold) and the reader's groups.

    ``readers`` is who asks: ``None`` reads everything (the library, an admin); a set of groups
    reads the documents that name none of theirs only if they name no readers at all. Every store
    pushes all of it into its query, so k rows come back whenever k rows pass.
    """

    source_glob: str | None = None
    document: str | None = None
    fields: tuple[FieldFilter, ...] = ()
    readers: frozenset[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.source_glob or self.document or self.fields or self.readers is not None)

    def matches(self, source: str, doc_id: str, attrs: str = "", readers: Sequence[str] = ()) -> bool:
        """The filter applied in Python (stores that cannot push it down to a query language)."""
        if self.source_glob and not _glob(self.source_glob).search(source):
            return False
        if self.document and self.document not in (doc_id, source):
            return False
        if self.readers is not None and readers and not self.readers.intersection(readers):
            return False
        return not self.fields or matches_all(self.fields, attrs_of(attrs))

    def key(self) -> str:
        """A stable text of the whole filter, for cache keys (two equal filters, one key)."""
        fields = ";".join(f.text() for f in sorted(self.fields, key=lambda f: (f.key, f.op)))
        groups = "*" if self.readers is None else ",".join(sorted(self.readers))
        return f"src={self.source_glob or ''}|doc={self.document or ''}|f={fields}|r={groups}"


def glob_to_regex(pattern: str) -> str:
    """Source filter glob -> anchored regex: ``*`` spans folders; a relative pattern matches at any depth.

    Written out by hand rather than with ``fnmatch.translate``, whose atomic groups (for two or
    more ``*``) the Rust regex engine behind LanceDB's ``regexp_like`` rejects.
    """
    if not pattern.startswith(("/", "*", "http://", "https://")):
        pattern = "*/" + pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1 if i < n and pattern[i] == "!" else i
            j = pattern.find("]", j + 1 if j < n and pattern[j] == "]" else j)
            if j < 0:
                out.append(re.escape(ch))
                continue
            body = pattern[i:j].replace("\\", "\\\\")
            i = j + 1
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_to_regex(pattern))


@runtime_checkable
class ChunkStore(Protocol):
    def replace_documents(self, sources: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Make ``chunks`` the only chunks of ``sources``, in one atomic commit.

        A reader sees either the old chunks of every source in the batch or the new ones, never a
        mix, so a crash at any point leaves the store consistent.
        """
        ...

    def delete_sources(self, sources: Sequence[str]) -> None: ...

    def dense(self, vector: Vectors, k: int, where: Where | None = None) -> list[Hit]:
        """The ``k`` chunks nearest ``vector`` by cosine.

        Reads (``dense``, ``lexical``, ``vectors``) may run from several threads at once: a hybrid
        search runs its two legs concurrently.
        """
        ...

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
