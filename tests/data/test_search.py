"""Retrieval: modes, filters, duplicates, and hybrid >= each single mode on SciFact queries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lamina.data.collection import Collection, Workspace
from lamina.data.fusion import best_per_document, reciprocal_rank_fusion
from lamina.data.store.base import Where
from lamina.data.types import Document, Hit, sha256_hex
from lamina.errors import LaminaError
from lamina.evals.metrics import ndcg_at
from tests.conftest import DOCS


def _hit(cid: str, score: float = 1.0) -> Hit:
    return Hit(cid, "d" + cid, "s", "t", [], None, "text " + cid, score, text_hash=cid)


def test_rrf_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[_hit("a"), _hit("b"), _hit("c")], [_hit("c"), _hit("b"), _hit("d")]])
    assert [h.chunk_id for h in fused] == ["c", "b", "a", "d"]  # both lists beat one top spot
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert fused[0].scores == {"0": 1.0, "1": 1.0}


def test_modes_filters_and_fields(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for name in ["test.docx", "REPAIR-2022-INV-001_multipage.pdf", "test_blog.html"]:
        shutil.copy(DOCS / name, root / name)
    coll = workspace.collection("kb", create=True)
    coll.ingest([str(root)])
    for mode in ("dense", "bm25", "hybrid"):
        hits = coll.search("grand total of the auto repair estimate", k=3, mode=mode)  # type: ignore[arg-type]
        assert hits and hits[0].source.endswith("REPAIR-2022-INV-001_multipage.pdf")
        assert hits[0].page in {1, 2, 3}
        assert len(hits) <= 3
    only_html = coll.search("repair estimate", k=5, where=Where(source_glob="*.html"))
    assert only_html and all(h.source.endswith(".html") for h in only_html)
    docx = str(root / "test.docx")
    in_doc = coll.search("agents", k=5, where=Where(document=docx))
    assert in_doc and {h.source for h in in_doc} == {docx}
    by_id = coll.search("agents", k=5, where=Where(document=in_doc[0].doc_id))
    assert {h.source for h in by_id} == {docx}
    fields = in_doc[0].to_dict()
    assert {"text", "source", "page", "headings", "score", "chunk_id"} <= fields.keys()


def test_bad_queries(workspace: Workspace) -> None:
    coll = workspace.collection("kb", create=True)
    with pytest.raises(LaminaError, match="empty"):
        coll.search("   ")
    with pytest.raises(LaminaError, match="unknown search mode"):
        coll.search("x", mode="fuzzy")  # type: ignore[arg-type]
    assert coll.search("nothing ingested yet") == []


def test_identical_text_in_two_documents_shows_once(workspace: Workspace) -> None:
    text = "Aspirin reduces the risk of heart attack in adults over fifty, according to the trial."
    docs = [Document(f"mem://{n}", text, sha256_hex(n + text), title="Trial") for n in ("a", "b")]
    coll = workspace.collection("dups", create=True)
    report = coll.ingest_documents(docs)
    assert report.chunks_embedded == 1  # the second copy reuses the first one's vector
    hits = coll.search("aspirin heart attack", k=5)
    assert len(hits) == 1


def test_hybrid_matches_or_beats_both_modes_on_scifact(
    scifact_collection: Collection, scifact_sample: dict[str, object]
) -> None:
    queries: dict[str, str] = scifact_sample["queries"]  # type: ignore[assignment]
    qrels: dict[str, dict[str, int]] = scifact_sample["qrels"]  # type: ignore[assignment]
    coll = scifact_collection  # the sample's abstracts, as scifact:<id> documents
    scores = {}
    for mode in ("dense", "bm25", "hybrid"):
        total = 0.0
        for qid, text in queries.items():
            hits = best_per_document(coll.search(text, k=100, mode=mode, candidates=100))  # type: ignore[arg-type]
            total += ndcg_at([h.source.split(":", 1)[1] for h in hits], qrels[qid], 10)
        scores[mode] = total / len(queries)
    assert scores["hybrid"] >= scores["dense"] - 1e-9, scores
    assert scores["hybrid"] >= scores["bm25"] - 1e-9, scores
