"""Fusion of rankings (reciprocal ranks or normalized scores), feedback and document ranking."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from lamina.data.embed.base import Vectors, normalize
from lamina.data.types import Hit


def _add_up(contributions: Iterable[tuple[str, Hit, float]]) -> list[Hit]:
    """Sum each chunk's contributions, best first; ``scores`` keeps each ranking's own score."""
    fused: dict[str, Hit] = {}
    for name, hit, value in contributions:
        entry = fused.get(hit.chunk_id)
        if entry is None:
            entry = fused[hit.chunk_id] = replace(hit, score=0.0, scores={})
        entry.score += value
        entry.scores[name] = hit.score
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hit]], k: int = 60, names: Sequence[str] = ()
) -> list[Hit]:
    """Score each chunk by sum(1 / (k + rank)) over the rankings it appears in (Cormack et al., 2009).

    Rank-based, so BM25 scores and cosine similarities need no calibration against each other.
    """
    return _add_up(
        (names[index] if index < len(names) else str(index), hit, 1.0 / (k + rank))
        for index, ranking in enumerate(rankings)
        for rank, hit in enumerate(ranking, start=1)
    )


def convex_fusion(
    rankings: Sequence[Sequence[Hit]], weights: Sequence[float], names: Sequence[str]
) -> list[Hit]:
    """Score each chunk by sum(weight * min-max normalized score); absent from a ranking counts 0.

    Uses the scores, not only the ranks, so a clear BM25 or dense winner keeps its margin
    (Bruch et al., 2023, "An Analysis of Fusion Functions for Hybrid Retrieval").
    """

    def normalized(ranking: Sequence[Hit], weight: float, name: str) -> Iterator[tuple[str, Hit, float]]:
        low = min(h.score for h in ranking)
        span = (max(h.score for h in ranking) - low) or 1.0
        return ((name, hit, weight * (hit.score - low) / span) for hit in ranking)

    return _add_up(
        entry
        for ranking, weight, name in zip(rankings, weights, names, strict=True)
        if ranking
        for entry in normalized(ranking, weight, name)
    )


def rocchio(query: Vectors, feedback: Vectors, weight: float) -> Vectors:
    """The query moved toward the centroid of the top hits' vectors (pseudo-relevance feedback)."""
    if not len(feedback):
        return query
    return normalize(query + weight * feedback.mean(axis=0, keepdims=True))


def rank_documents(hits: Sequence[Hit], chunks: int = 1) -> list[Hit]:
    """One hit per document, best first, scored by the sum of its best ``chunks`` chunk scores.

    ``chunks = 1`` is the best chunk alone. Hits must be sorted best first; the hit kept for a
    document is its best chunk, with the document's score.
    """
    if chunks == 1:
        return best_per_document(hits)
    best: dict[str, Hit] = {}
    totals: dict[str, list[float]] = {}
    for hit in hits:
        scores = totals.setdefault(hit.doc_id, [])
        if len(scores) < chunks:
            scores.append(hit.score)
        best.setdefault(hit.doc_id, hit)
    ranked = sorted(best, key=lambda d: sum(totals[d]), reverse=True)
    return [replace(best[d], score=sum(totals[d])) for d in ranked]


def collapse_duplicates(hits: Sequence[Hit]) -> list[Hit]:
    """Identical chunk text stored under several documents shows once, at its best rank."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        key = hit.text_hash or hit.chunk_id
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out


def best_per_document(hits: Sequence[Hit]) -> list[Hit]:
    """Rank documents by their best chunk (hits must already be sorted best first)."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            out.append(hit)
    return out
