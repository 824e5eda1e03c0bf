"""Retrieval levers (fusion, title field, document aggregation, dense feedback, rerank) change rankings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lamina
from lamina.config import SearchSettings, load_settings
from lamina.data.collection import Collection, Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.fusion import convex_fusion, rank_documents, rocchio
from lamina.data.types import Hit, doc_id_for
from lamina.errors import LaminaError, ModelUnavailable
from lamina.evals.retrieval import NO_LEVERS
from lamina.testing.json_http import JsonHandler, serving


def _hit(cid: str, score: float, doc: str | None = None) -> Hit:
    return Hit(cid, doc or "d" + cid, "s", "t", [], None, "text " + cid, score, text_hash=cid)


def test_convex_fusion_uses_normalized_scores() -> None:
    dense = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.1)]
    bm25 = [_hit("c", 30.0), _hit("b", 29.0), _hit("d", 1.0)]
    fused = convex_fusion([dense, bm25], [0.5, 0.5], ["dense", "bm25"])
    # b is near the top of both lists; a and c top one list each
    assert [h.chunk_id for h in fused][:1] == ["b"]
    assert fused[0].score == pytest.approx(0.5 * (0.7 / 0.8) + 0.5 * (28 / 29))
    assert fused[0].scores == {"dense": 0.8, "bm25": 29.0}
    only_dense = convex_fusion([dense, bm25], [1.0, 0.0], ["dense", "bm25"])
    assert [h.chunk_id for h in only_dense][:2] == ["a", "b"]


def test_documents_rank_by_the_sum_of_their_best_chunks() -> None:
    hits = [_hit("1", 0.9, "x"), _hit("2", 0.8, "y"), _hit("3", 0.7, "y"), _hit("4", 0.6, "y")]
    assert [h.doc_id for h in rank_documents(hits, 1)] == ["x", "y"]
    summed = rank_documents(hits, 2)
    assert [h.doc_id for h in summed] == ["y", "x"]
    assert summed[0].score == pytest.approx(1.5) and summed[0].chunk_id == "2"  # shown by its best chunk


def test_rocchio_moves_the_query_toward_the_feedback() -> None:
    query = np.array([[1.0, 0.0, 0.0]], np.float32)
    feedback = np.array([[0.0, 1.0, 0.0], [0.0, 0.8, 0.6]], np.float32)
    moved = rocchio(query, feedback, 0.5)
    assert np.linalg.norm(moved) == pytest.approx(1.0)
    assert moved[0, 1] > 0 and moved[0, 0] > moved[0, 1]  # still mostly the query
    assert np.array_equal(rocchio(query, feedback[:0], 0.5), query)


def _rankings(coll: Collection, queries: dict[str, str], **levers: Any) -> dict[str, list[str]]:
    options = SearchSettings(**{**NO_LEVERS, **levers})
    return {
        q: [h.doc_id for h in coll.search_documents(text, 10, candidates=100, options=options)]
        for q, text in queries.items()
    }


@pytest.mark.parametrize(
    "levers",
    [
        {"fusion": "convex", "dense_weight": 0.5},
        {"rrf_k": 10},
        {"title_boost": 2.0},
        {"doc_chunks": 2},
        {"prf_docs": 3, "prf_weight": 1.0},
    ],
    ids=["convex", "rrf_k", "title", "doc_chunks", "prf"],
)
def test_each_lever_changes_rankings_on_scifact(
    scifact_collection: Collection, scifact_sample: dict[str, Any], levers: dict[str, Any]
) -> None:
    queries = scifact_sample["queries"]
    plain = _rankings(scifact_collection, queries)
    changed = _rankings(scifact_collection, queries, **levers)
    assert set(changed) == set(plain) and all(changed.values())
    assert sum(changed[q] != plain[q] for q in queries) >= 1, levers


def test_title_field_ranks_documents_by_their_titles(
    scifact_collection: Collection, scifact_sample: dict[str, Any]
) -> None:
    """Queried by its title, a document ranks at least as high with the title field boosted."""

    def reciprocal_rank(title: str, doc_id: str, boost: float) -> float:
        hits = scifact_collection.search_documents(
            title, 10, mode="bm25", options=SearchSettings(title_boost=boost)
        )
        ranks = [i for i, h in enumerate(hits, start=1) if h.doc_id == doc_id]
        return 1 / ranks[0] if ranks else 0.0

    docs = [(c["title"], doc_id_for(f"scifact:{c['_id']}")) for c in scifact_sample["corpus"][:20]]
    plain = sum(reciprocal_rank(t, d, 0.0) for t, d in docs)
    boosted = sum(reciprocal_rank(t, d, 3.0) for t, d in docs)
    assert boosted >= plain and boosted > 0.9 * len(docs), (plain, boosted)


class _RerankHandler(JsonHandler):
    """A real ``/rerank`` server on loopback, scoring by MiniLM cosine (a bi-encoder judge)."""

    model: OnnxMiniLM

    def do_POST(self) -> None:
        body = self.read_json()
        vectors = self.model.embed([body["query"], *body["documents"]])
        scores = (vectors[1:] @ vectors[0]).tolist()
        results = [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]
        self.reply({"model": body["model"], "results": results})


@pytest.fixture
def rerank_server(embedder: OnnxMiniLM) -> Iterator[str]:
    with serving(type("H", (_RerankHandler,), {"model": embedder})) as root:
        yield root + "/v1"


def test_rerank_stage_reorders_the_top_hits(rerank_server: str, embedder: OnnxMiniLM, tmp_path: Path) -> None:
    rerank = {"base_url": rerank_server, "model": "minilm-judge", "candidates": 5}
    settings = load_settings(data_dir=tmp_path / "data", search={"rerank": rerank})
    ws = Workspace(settings, embedder=embedder)
    coll = ws.collection("kb", create=True)
    coll.ingest([str(Path(lamina.__file__).parent / "samples")])
    hits = coll.search("Which database stores the vectors?", k=8)
    head = hits[:5]
    assert all("minilm-judge/rerank" in h.scores for h in head)
    assert [h.score for h in head] == sorted((h.score for h in head), reverse=True)
    assert all("minilm-judge/rerank" not in h.scores for h in hits[5:])  # only the top candidates

    dead = load_settings(data_dir=tmp_path / "data", search={"rerank": {"base_url": "http://127.0.0.1:9/v1"}})
    with pytest.raises(ModelUnavailable, match=r"rerank endpoint .* unreachable"):
        Workspace(dead, embedder=embedder).collection("kb").search("vectors")


def test_the_rerank_seam_in_process(embedder: OnnxMiniLM, tmp_path: Path) -> None:
    """The reranker comes from a table by URL scheme; the in-memory one needs no server."""
    rerank = {"base_url": "memory://lexical", "candidates": 4}
    settings = load_settings(data_dir=tmp_path / "data", search={"rerank": rerank})
    coll = Workspace(settings, embedder=embedder).collection("kb", create=True)
    coll.ingest([str(Path(lamina.__file__).parent / "samples")])
    hits = coll.search("Which database stores the vectors?", k=6)
    assert all("lexical/rerank" in h.scores for h in hits[:4])
    assert [h.score for h in hits[:4]] == sorted((h.score for h in hits[:4]), reverse=True)
    unknown = load_settings(data_dir=tmp_path / "data", search={"rerank": {"base_url": "ftp://x"}})
    with pytest.raises(LaminaError, match="unknown scheme 'ftp'"):
        Workspace(unknown, embedder=embedder).collection("kb").search("vectors")
