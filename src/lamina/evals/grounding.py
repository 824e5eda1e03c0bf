"""``lamina eval grounding``: ask SciFact claims over a few abstracts; how often is a gold abstract cited?

Also ``lamina eval min-similarity``: where ``rag.min_similarity`` should sit, from claims the
grounding eval never asks, so the default is not tuned to the numbers it is judged by.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections import Counter
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import numpy as np

from lamina.config import Settings
from lamina.data.collection import Collection, Workspace
from lamina.data.embed.base import Embedder
from lamina.evals.beir import BeirDataset
from lamina.models.base import LLM
from lamina.rag.answer import Answer, Answerer, best_similarity


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


def _collection(ws: Workspace, name: str, dataset: BeirDataset) -> Collection:
    coll = ws.collection(name, create=True)
    coll.ingest_documents(dataset.documents(), total=len(dataset.corpus))
    return coll


def evaluate_grounding(
    settings: Settings,
    dataset: BeirDataset,
    model: LLM,
    embedder: Embedder | None = None,
    *,
    max_docs: int = 20,
    max_claims: int | None = None,
) -> dict[str, Any]:
    """Counts and shares per claim: gold cited, nothing relevant, and how usable the model's own text was.

    ``model_empty``: the model wrote nothing but whitespace; ``model_degenerate``: it wrote something,
    but no sentence of it was usable (``model_unsupported``, a subset: some sentences were fine but
    none cited a source); either way the answer is ``extractive`` (quoted from the sources).
    """
    corpus, claims = pick(dataset, max_docs)
    claims = dict(list(claims.items())[:max_claims])
    subset = BeirDataset(dataset.name, corpus, claims, {q: dataset.qrels[q] for q in claims})
    counts: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lamina-grounding-") as tmp:
        ws = Workspace(settings.scratch(Path(tmp)), embedder=embedder)
        answerer = Answerer(_collection(ws, "grounding", subset), model, settings.rag)
        for qid, claim in claims.items():
            gold = {subset.source(d) for d, r in subset.qrels[qid].items() if r > 0}
            sources, request = answerer.prepare(claim)
            gold_numbers = {s.n for s in sources if s.hit.source in gold}
            assembler = answerer.assembler(claim, sources)
            *_, answer = answerer.respond(claim, sources, request, assembler)
            assert isinstance(answer, Answer)
            counts.update(
                gold_in_context=bool(gold_numbers),
                nothing_relevant=not answer.grounded,
                cites_gold=any(c.source in gold for c in answer.citations),
                cites_gold_by_model_markers=bool(gold_numbers & assembler.model_cited),
                empty_answers=not answer.answer.strip(),
                model_empty=request is not None and not assembler.model_text.strip(),
                model_degenerate=bool(assembler.model_text.strip()) and assembler.kept == 0,
                model_unsupported=assembler.kept == 0 and assembler.dropped["unsupported"] > 0,
                extractive=answer.extractive,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
            )
            dropped.update(assembler.dropped)
    n = len(claims)
    shares = (
        "cites_gold",
        "cites_gold_by_model_markers",
        "gold_in_context",
        "nothing_relevant",
        "empty_answers",
        "model_empty",
        "model_degenerate",
        "model_unsupported",
        "extractive",
    )
    return {
        "documents": len(corpus),
        "claims": n,
        **{name: round(counts[name] / n, 3) if n else 0.0 for name in shares},
        "counts": {name: counts[name] for name in shares},
        "sentences_dropped": dict(dropped),
        "prompt_tokens": counts["prompt_tokens"],
        "completion_tokens": counts["completion_tokens"],
        "seconds": round(time.perf_counter() - started, 1),
        "model": model.name,
    }


def calibrate_min_similarity(
    settings: Settings,
    dataset: BeirDataset,
    embedder: Embedder | None = None,
    *,
    eval_docs: int = 200,
) -> dict[str, Any]:
    """The equal-error threshold for ``rag.min_similarity``, from claims the grounding eval never asks.

    Held out: the claims ``pick(dataset, eval_docs)`` leaves out. Answerable: each held-out claim over
    the gold abstracts of all held-out claims. Off-topic: the same claims over the bundled sample
    documents (about Lamina, not biology). A threshold refuses answerable claims below it and answers
    off-topic ones at or above it; the one chosen is the middle of the range where both error shares
    are equal (fewest errors among those), since neither error is known to cost more.
    """
    _, eval_claims = pick(dataset, eval_docs)
    held = {q: t for q, t in dataset.queries.items() if q not in eval_claims}
    wanted = {d for q in held for d, r in dataset.qrels[q].items() if r > 0}
    corpus = [d for d in dataset.corpus if d["_id"] in wanted]
    subset = BeirDataset(dataset.name, corpus, held, {q: dataset.qrels[q] for q in held})
    k = settings.rag.k
    with tempfile.TemporaryDirectory(prefix="lamina-calibrate-") as tmp:
        ws = Workspace(settings.scratch(Path(tmp)), embedder=embedder)
        gold = _collection(ws, "heldout", subset)
        samples = ws.collection("samples", create=True)
        with as_file(files("lamina") / "samples") as folder:
            samples.ingest([str(folder)])
        answerable = np.array([best_similarity(gold.search(c, k=k)) for c in held.values()])
        off_topic = np.array([best_similarity(samples.search(c, k=k)) for c in held.values()])
    threshold, refused, answered = _equal_error(answerable, off_topic)
    return {
        "held_out_claims": len(held),
        "abstracts": len(corpus),
        "threshold": round(threshold, 2),
        "answerable_refused": round(refused, 3),
        "off_topic_answered": round(answered, 3),
        "answerable_best_similarity": _quantiles(answerable),
        "off_topic_best_similarity": _quantiles(off_topic),
    }


def _equal_error(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float, float]:
    """(threshold, share of ``positive`` below it, share of ``negative`` at or above it).

    Any threshold between two neighbouring observed values errs alike; the middle of that gap is taken.
    """
    values = np.unique(np.concatenate([positive, negative]))
    options = []
    for low, high in itertools.pairwise(values):
        refused, answered = float(np.mean(positive <= low)), float(np.mean(negative > low))
        middle = float(low + high) / 2
        options.append((abs(refused - answered), refused + answered, middle, refused, answered))
    _, _, threshold, refused, answered = min(options)
    return threshold, refused, answered


def _quantiles(values: np.ndarray) -> dict[str, float]:
    points = {"min": 0, "p5": 5, "median": 50, "p95": 95, "max": 100}
    return {name: round(float(np.percentile(values, p)), 3) for name, p in points.items()}
