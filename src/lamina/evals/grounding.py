"""``lamina eval grounding``: ask SciFact claims over ~20 abstracts; how often is a gold abstract cited?"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lamina.config import Settings
from lamina.data.collection import Workspace
from lamina.data.embed.base import Embedder
from lamina.evals.beir import BeirDataset
from lamina.models.base import LLM
from lamina.rag.answer import Answerer


def pick(dataset: BeirDataset, max_docs: int) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The first claims whose gold abstracts fit in ``max_docs`` abstracts, and those abstracts."""
    docs: set[str] = set()
    claims: dict[str, str] = {}
    for qid, text in dataset.queries.items():
        gold = {d for d, r in dataset.qrels[qid].items() if r > 0}
        if len(docs | gold) > max_docs:
            continue
        docs |= gold
        claims[qid] = text
    by_id = {d["_id"]: d for d in dataset.corpus}
    return [by_id[d] for d in sorted(docs) if d in by_id], claims


def evaluate_grounding(
    settings: Settings,
    dataset: BeirDataset,
    model: LLM,
    embedder: Embedder | None = None,
    *,
    max_docs: int = 20,
) -> dict[str, Any]:
    corpus, claims = pick(dataset, max_docs)
    subset = BeirDataset(dataset.name, corpus, claims, {q: dataset.qrels[q] for q in claims})
    with tempfile.TemporaryDirectory(prefix="lamina-grounding-") as tmp:
        ws = Workspace(settings.model_copy(update={"data_dir": Path(tmp)}), embedder=embedder)
        coll = ws.collection("grounding", create=True)
        coll.ingest_documents(subset.documents(), total=len(corpus))
        answerer = Answerer(coll, model, settings.rag)
        cited_gold = retrieved_gold = nothing = marker_cited = 0
        prompt_tokens = completion_tokens = 0
        for qid, claim in claims.items():
            gold = {subset.source(d) for d, r in subset.qrels[qid].items() if r > 0}
            sources, request = answerer.prepare(claim)
            retrieved_gold += any(s.hit.source in gold for s in sources)
            if request is None:
                answer = answerer.nothing_relevant()
            else:
                answer = answerer.finish(model.generate(request), sources, claim)
            nothing += not answer.grounded
            hit = any(c.source in gold for c in answer.citations)
            cited_gold += hit
            marker_cited += hit and not answer.attributed
            prompt_tokens += answer.usage.prompt_tokens
            completion_tokens += answer.usage.completion_tokens
    n = len(claims)
    return {
        "documents": len(corpus),
        "claims": n,
        "cites_gold": round(cited_gold / n, 3),
        "cites_gold_by_model_markers": round(marker_cited / n, 3),
        "gold_in_context": round(retrieved_gold / n, 3),
        "said_nothing_relevant": round(nothing / n, 3),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "model": model.name,
    }
