"""Reciprocal Rank Fusion and result clean-up shared by every retrieval mode."""

from __future__ import annotations

from collections.abc import Sequence

from lamina.data.types import Hit


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hit]], k: int = 60, names: Sequence[str] = ()
) -> list[Hit]:
    """Score each chunk by sum(1 / (k + rank)) over the rankings it appears in (Cormack et al., 2009).

    Rank-based, so BM25 scores and cosine similarities need no calibration against each other.
    """
    fused: dict[str, Hit] = {}
    for index, ranking in enumerate(rankings):
        name = names[index] if index < len(names) else str(index)
        for rank, hit in enumerate(ranking, start=1):
            entry = fused.get(hit.chunk_id)
            if entry is None:
                entry = Hit(**{**hit.__dict__, "score": 0.0, "scores": {}})
                fused[hit.chunk_id] = entry
            entry.score += 1.0 / (k + rank)
            entry.scores[name] = hit.score
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)


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
