"""The ``Reranker`` Protocol's promises, against every implementation in ``RERANKERS``.

The HTTP one talks to a real ``/rerank`` server on loopback that judges by MiniLM cosine (as in
test_search_levers.py); the in-process lexical one needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lamina.config import RerankSettings
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.rerank import RERANKERS, HttpReranker, LexicalReranker, Reranker, make_reranker, rerank
from lamina.data.types import Hit
from lamina.testing.json_http import JsonHandler, serving

QUERY = "How do I get a refund for a damaged item?"
RELEVANT = "To get a refund for a damaged item, return it within 30 days with the receipt."
UNRELATED = "The cafeteria on the third floor opens at nine every morning."
OTHER = "Shipping to Norway takes five to seven working days."


class _RerankHandler(JsonHandler):
    """``/rerank`` in the shape vLLM, Jina and Cohere share, scoring by MiniLM cosine; results shuffled
    (highest first, as real servers answer) so that the client must place them by ``index``."""

    model: OnnxMiniLM

    def do_POST(self) -> None:
        body = self.read_json()
        if self.path != "/v1/rerank":
            self.reply({"error": {"message": "not found"}}, status=404)
            return
        vectors = self.model.embed([body["query"], *body["documents"]])
        scores = (vectors[1:] @ vectors[0]).tolist()
        results = [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]
        results.sort(key=lambda r: -float(r["relevance_score"]))
        self.reply({"model": body["model"], "results": results})


@pytest.fixture(scope="session")
def rerank_url(embedder: OnnxMiniLM) -> Iterator[str]:
    with serving(type("H", (_RerankHandler,), {"model": embedder})) as root:
        yield root + "/v1"


# one entry per implementation: how to configure it
IMPLEMENTATIONS = {"http": HttpReranker, "memory": LexicalReranker}


@pytest.fixture(scope="session", params=sorted(IMPLEMENTATIONS))
def reranker(request: pytest.FixtureRequest) -> Reranker:
    if request.param == "http":
        settings = RerankSettings(base_url=request.getfixturevalue("rerank_url"), model="minilm-judge")
    else:
        settings = RerankSettings(base_url="memory://lexical")
    made = make_reranker(settings)
    assert isinstance(made, IMPLEMENTATIONS[request.param])
    return made


def test_every_registered_reranker_is_under_contract() -> None:
    assert set(RERANKERS.values()) == set(IMPLEMENTATIONS.values())


def test_no_base_url_is_no_reranker() -> None:
    assert make_reranker(RerankSettings()) is None


def test_it_has_a_name(reranker: Reranker) -> None:
    assert isinstance(reranker.name, str) and reranker.name.endswith("/rerank")


def test_one_float_per_passage(reranker: Reranker) -> None:
    texts = [UNRELATED, RELEVANT, OTHER]
    scores = reranker.scores(QUERY, texts)
    assert len(scores) == len(texts) and all(isinstance(s, float) for s in scores)


def test_scores_follow_the_passages_order(reranker: Reranker) -> None:
    texts = [UNRELATED, RELEVANT, OTHER]
    forward = reranker.scores(QUERY, texts)
    backward = reranker.scores(QUERY, texts[::-1])
    assert backward == pytest.approx(forward[::-1], abs=1e-5)
    assert reranker.scores(QUERY, [RELEVANT]) == pytest.approx([forward[1]], abs=1e-5)


def test_the_better_passage_scores_higher(reranker: Reranker) -> None:
    unrelated, relevant, other = reranker.scores(QUERY, [UNRELATED, RELEVANT, OTHER])
    assert relevant > unrelated and relevant > other


def test_no_passages_no_scores(reranker: Reranker) -> None:
    assert reranker.scores(QUERY, []) == []


def test_deterministic(reranker: Reranker) -> None:
    texts = [UNRELATED, RELEVANT, OTHER, RELEVANT]
    first = reranker.scores(QUERY, texts)
    assert reranker.scores(QUERY, texts) == pytest.approx(first, abs=1e-6)
    assert first[1] == pytest.approx(first[3], abs=1e-5)  # the same passage twice, the same score


def test_rerank_reorders_the_top_hits_only(reranker: Reranker) -> None:
    def hit(cid: str, text: str, score: float) -> Hit:
        return Hit(cid, "d" + cid, "s", "t", [], None, text, score, text_hash=cid)

    hits = [hit("a", UNRELATED, 0.9), hit("b", OTHER, 0.8), hit("c", RELEVANT, 0.7), hit("d", RELEVANT, 0.1)]
    out = rerank(reranker, QUERY, hits, top=3)
    assert out[0].chunk_id == "c" and out[-1].chunk_id == "d"  # the tail keeps its place
    assert {h.chunk_id for h in out} == {"a", "b", "c", "d"}
    assert all(reranker.name in h.scores for h in out[:3]) and reranker.name not in out[-1].scores
