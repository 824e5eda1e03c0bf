"""``lamina eval retrieval``: ingest a BEIR corpus through the real pipeline, score configurations.

Each configuration is a search mode plus ``[search]`` settings; every one runs through
``Collection.search_documents``, the same path the API uses, so the table is what users get.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lamina.config import SearchSettings
from lamina.data.collection import Collection, SearchMode, Workspace
from lamina.data.progress import Progress
from lamina.evals.beir import BeirDataset
from lamina.evals.metrics import score_run

DOCS_PER_QUERY = 100  # Recall@100 needs a hundred distinct documents
CHUNKS_PER_QUERY = 400
NO_LEVERS: dict[str, Any] = {"fusion": "rrf", "rrf_k": 60, "title_boost": 0.0, "prf_docs": 0, "doc_chunks": 1}


@dataclass(frozen=True)
class RetrievalConfig:
    """A named search mode and the ``[search]`` settings it overrides."""

    label: str
    mode: SearchMode
    settings: dict[str, Any] = field(default_factory=dict)


LEVER_TRIALS: dict[str, Any] = {"title_boost": 1.0, "doc_chunks": 2, "prf_docs": 3}


def lever_configs(search: SearchSettings) -> list[RetrievalConfig]:
    """The three modes as configured, plain RRF, each lever alone over it, then all levers together.

    A lever's value is the configured one; a lever that is off in the configuration is shown at
    its ``LEVER_TRIALS`` value, so the comparison is always complete.
    """
    configured = {k: getattr(search, k) for k in (*NO_LEVERS, "dense_weight", "prf_weight")}

    def value(key: str) -> Any:
        return configured[key] if configured[key] != NO_LEVERS[key] else LEVER_TRIALS[key]

    levers: list[tuple[str, dict[str, Any]]] = [
        ("convex fusion", {"fusion": "convex", "dense_weight": configured["dense_weight"]}),
        ("title field", {"title_boost": value("title_boost")}),
        ("doc = sum of top chunks", {"doc_chunks": value("doc_chunks")}),
        ("dense PRF (Rocchio)", {"prf_docs": value("prf_docs"), "prf_weight": configured["prf_weight"]}),
    ]
    out = [RetrievalConfig(mode, mode, configured) for mode in ("dense", "bm25", "hybrid")]
    out.append(RetrievalConfig("hybrid, plain RRF (k=60)", "hybrid", NO_LEVERS))
    out += [
        RetrievalConfig(f"hybrid, RRF + {name}", "hybrid", {**NO_LEVERS, **lever}) for name, lever in levers
    ]
    together = {k: v for _, lever in levers for k, v in lever.items()}
    out.append(RetrievalConfig("hybrid, all four levers", "hybrid", {**NO_LEVERS, **together}))
    return out


GRID: dict[str, list[dict[str, Any]]] = {
    "rrf_k": [{"rrf_k": k} for k in (10, 20, 40, 60, 100)],
    "convex": [{"fusion": "convex", "dense_weight": w} for w in (0.3, 0.4, 0.5, 0.6, 0.7)],
    "title_boost": [{"title_boost": b} for b in (0.5, 1.0, 2.0, 3.0)],
    "doc_chunks": [{"doc_chunks": n} for n in (2, 3)],
    "prf": [{"prf_docs": n, "prf_weight": w} for n in (1, 3, 5) for w in (0.5, 1.0)],
}


def grid_configs() -> list[RetrievalConfig]:
    """Each lever over a range of values, the others off (plain RRF): for tuning on a dev split."""
    out = [RetrievalConfig("hybrid, plain RRF (k=60)", "hybrid", NO_LEVERS)]
    for lever, trials in GRID.items():
        for trial in trials:
            label = f"{lever}: " + ", ".join(f"{k}={v}" for k, v in trial.items() if k != "fusion")
            out.append(RetrievalConfig(label, "hybrid", {**NO_LEVERS, **trial}))
    return out


def run_config(coll: Collection, dataset: BeirDataset, config: RetrievalConfig) -> dict[str, float]:
    options = coll.settings.search.model_copy(update=config.settings)
    run: dict[str, list[str]] = {}
    for qid, text in dataset.queries.items():
        docs = coll.search_documents(
            text, DOCS_PER_QUERY, mode=config.mode, candidates=CHUNKS_PER_QUERY, options=options
        )
        run[qid] = [dataset.doc_id_of(h.source) for h in docs]
    return score_run(run, dataset.qrels)


def hybrid_ndcg(coll: Collection, dataset: BeirDataset) -> float:
    """nDCG@10 of hybrid search as configured: how ``lamina versions --dataset`` compares builds."""
    return run_config(coll, dataset, RetrievalConfig("hybrid", "hybrid"))["ndcg@10"]


def ingest_dataset(
    workspace: Workspace,
    dataset: BeirDataset,
    *,
    collection: str | None = None,
    reuse: bool = False,
    progress: Progress | None = None,
) -> tuple[Collection, dict[str, Any]]:
    name = collection or f"eval-{dataset.name}"
    if not reuse and workspace.registry.get_collection(name) is not None:
        workspace.drop(name)
    coll = workspace.collection(name, create=True)
    started = time.perf_counter()
    report = coll.ingest_documents(dataset.documents(), total=len(dataset.corpus), progress=progress)
    return coll, {
        "ingest_seconds": round(time.perf_counter() - started, 1),
        "documents": len(dataset.corpus),
        "chunks": coll.store.count(),
        "queries": len(dataset.queries),
        "tokens_embedded": report.tokens_embedded,
        "embedding_model": coll.embedder.name,
    }


def evaluate_retrieval(
    workspace: Workspace,
    dataset: BeirDataset,
    *,
    collection: str | None = None,
    reuse: bool = False,
    progress: Progress | None = None,
    configs: list[RetrievalConfig] | None = None,
) -> dict[str, Any]:
    """Documents are ranked per ``search.doc_chunks``; metrics per configuration plus ingest facts.

    ``result[mode]`` holds the three modes as configured; ``result["configs"]`` every configuration
    with its settings, so anyone can rerun one on their own BEIR-format data.
    """
    coll, facts = ingest_dataset(workspace, dataset, collection=collection, reuse=reuse, progress=progress)
    results: dict[str, Any] = {}
    rows = []
    for config in configs or lever_configs(workspace.settings.search):
        metrics = run_config(coll, dataset, config)
        rows.append({"label": config.label, "mode": config.mode, "settings": config.settings, **metrics})
        if config.label == config.mode:
            results[config.mode] = metrics
    results["configs"] = rows
    return {**results, **facts}
