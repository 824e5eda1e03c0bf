"""A ``ChunkStore`` in this process's memory: exact cosine search and a small real BM25.

For tests and throwaway runs (``[store] backend = "memory"``): nothing is written to disk, so a
new process starts empty. Every write swaps in a new snapshot under a lock, so a reader sees a
batch either wholly or not at all, as with LanceDB's commits.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import Stemmer

from lamina.data.embed.base import Vectors
from lamina.data.store.base import Where
from lamina.data.types import Chunk, Hit

BM25_K1 = 1.2
BM25_B = 0.75

# The English stop words of LanceDB's (tantivy's) full-text index.
# fmt: off
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with",
})
# fmt: on
_TOKEN = re.compile(r"\w+")
_STEMMER = Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """Snowball's English (Porter2) stemmer, the one LanceDB's full-text index stems with."""
    return str(_STEMMER.stemWord(word))


def terms(text: str) -> list[str]:
    """Lowercased word tokens, stop words dropped, stemmed: what BM25 counts."""
    return [_stem(t) for t in _TOKEN.findall(text.lower()) if t not in STOP_WORDS]


class _Field:
    """BM25 statistics of one text field over a snapshot of chunks (an inverted index)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.n = len(texts)
        self.lengths = np.zeros(self.n, dtype=np.float64)
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, text in enumerate(texts):
            tf = Counter(terms(text))
            self.lengths[i] = sum(tf.values())
            for term, f in tf.items():
                self.postings.setdefault(term, []).append((i, f))
        self.avg = float(self.lengths.mean()) if self.n else 0.0

    def scores(self, query: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float64)
        for term in set(query):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (self.n - len(posting) + 0.5) / (len(posting) + 0.5))
            for i, f in posting:
                norm = 1 - BM25_B + BM25_B * self.lengths[i] / (self.avg or 1.0)
                out[i] += idf * f * (BM25_K1 + 1) / (f + BM25_K1 * norm)
        return out


@dataclass(frozen=True)
class _Snapshot:
    """One committed state of the store; never changed once built."""

    chunks: tuple[Chunk, ...]
    matrix: np.ndarray  # unit vectors, one row per chunk
    raw: np.ndarray  # the vectors as given (returned by ``vectors`` / ``reused_vectors``)
    version: int

    @staticmethod
    def build(chunks: Sequence[Chunk], raw: np.ndarray, version: int) -> _Snapshot:
        norms = np.linalg.norm(raw, axis=1, keepdims=True) if len(raw) else np.ones((0, 1))
        return _Snapshot(tuple(chunks), raw / np.where(norms == 0, 1.0, norms), raw, version)


class MemoryStore:
    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._lock = threading.Lock()
        self._snap = _Snapshot.build([], np.zeros((0, dim), np.float32), 0)
        self._text: _Field | None = None  # BM25 statistics of the current snapshot, built on first use
        self._title: _Field | None = None

    @property
    def dim(self) -> int:
        return self._dim

    # writes: each builds a new snapshot and swaps it in -------------------------------------
    def _commit(self, chunks: Sequence[Chunk], raw: np.ndarray) -> None:
        self._snap = _Snapshot.build(chunks, raw, self._snap.version + 1)
        self._text = self._title = None

    def replace_documents(self, sources: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors) -> None:
        new = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        if len(new) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(new)} vectors")
        with self._lock:
            old = self._snap
            if not old.chunks and not chunks:
                return
            replaced = set(sources)
            fresh = {c.chunk_id for c in chunks}
            keep = [
                i for i, c in enumerate(old.chunks) if c.source not in replaced and c.chunk_id not in fresh
            ]
            self._commit(
                [*(old.chunks[i] for i in keep), *chunks],
                np.concatenate([old.raw[keep], new]) if keep else new,
            )

    def delete_sources(self, sources: Sequence[str]) -> None:
        gone = set(sources)
        with self._lock:
            old = self._snap
            if not old.chunks or not gone:
                return
            keep = [i for i, c in enumerate(old.chunks) if c.source not in gone]
            self._commit([old.chunks[i] for i in keep], old.raw[keep])

    # reads ------------------------------------------------------------------------------------
    @staticmethod
    def _hit(chunk: Chunk, score: float) -> Hit:
        return Hit(
            chunk_id=chunk.chunk_id,
            doc_id=chunk.doc_id,
            source=chunk.source,
            title=chunk.title or "",
            headings=list(chunk.headings),
            page=chunk.page,
            text=chunk.text,
            score=score,
            start=chunk.start,
            end=chunk.end,
            text_hash=chunk.text_hash,
            meta=chunk.meta,
            attrs=chunk.attrs,
        )

    @staticmethod
    def _top(snap: _Snapshot, scores: np.ndarray, k: int, where: Where | None, positive: bool) -> list[Hit]:
        allowed = [
            i
            for i, c in enumerate(snap.chunks)
            if (not where or where.matches(c.source, c.doc_id, c.attrs, c.readers))
            and (not positive or scores[i] > 0)
        ]
        allowed.sort(key=lambda i: -scores[i])  # stable: ties keep insertion order
        return [MemoryStore._hit(snap.chunks[i], float(scores[i])) for i in allowed[:k]]

    def dense(self, vector: Vectors, k: int, where: Where | None = None) -> list[Hit]:
        snap = self._snap
        if not snap.chunks or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(query))
        scores = snap.matrix @ (query / norm if norm else query)
        return self._top(snap, scores, k, where, positive=False)

    def _fields(self, snap: _Snapshot, title: bool) -> tuple[_Field, _Field | None]:
        with self._lock:
            if self._snap is not snap:  # a write landed meanwhile: statistics of this snapshot only
                return _Field([c.indexed_text for c in snap.chunks]), (
                    _Field([c.title for c in snap.chunks]) if title else None
                )
            if self._text is None:
                self._text = _Field([c.indexed_text for c in snap.chunks])
            if title and self._title is None:
                self._title = _Field([c.title for c in snap.chunks])
            return self._text, self._title

    def lexical(self, query: str, k: int, where: Where | None = None, title_boost: float = 0.0) -> list[Hit]:
        snap = self._snap
        words = terms(query)
        if not snap.chunks or not words or k <= 0:
            return []
        text, title = self._fields(snap, title_boost > 0)
        scores = text.scores(words)
        if title is not None:
            scores = scores + title_boost * title.scores(words)
        return self._top(snap, scores, k, where, positive=True)

    def vectors(self, chunk_ids: Sequence[str]) -> Vectors:
        snap = self._snap
        index = {c.chunk_id: i for i, c in enumerate(snap.chunks)}
        rows = [index[c] for c in chunk_ids if c in index]
        return np.asarray(snap.raw[rows], dtype=np.float32).reshape(-1, self._dim)

    def count(self) -> int:
        return len(self._snap.chunks)

    def version(self) -> int:
        return self._snap.version

    def sources(self) -> dict[str, int]:
        return dict(Counter(c.source for c in self._snap.chunks))

    def reused_vectors(self, embed_hashes: Sequence[str]) -> dict[str, list[float]]:
        snap = self._snap
        wanted = set(embed_hashes)
        found: dict[str, list[float]] = {}
        for i, c in enumerate(snap.chunks):
            h = c.embed_hash
            if h in wanted and h not in found:
                found[h] = [float(x) for x in snap.raw[i]]
        return found

    def optimize(self) -> None:
        """Nothing to compact: every read works on the latest snapshot directly."""

    def drop(self) -> None:
        with self._lock:
            self._snap = _Snapshot.build([], np.zeros((0, self._dim), np.float32), 0)
            self._text = self._title = None
