"""``lamina eval retrieval``: ingest a BEIR corpus through the real pipeline, score every mode."""

from __future__ import annotations

import time
from typing import Any

from lamina.data.collection import SEARCH_MODES, Workspace
from lamina.data.fusion import best_per_document
from lamina.data.ingest import Progress
from lamina.evals.beir import BeirDataset
from lamina.evals.metrics import score_run

DOCS_PER_QUERY = 100  # Recall@100 needs a hundred distinct documents
CHUNKS_PER_QUERY = 400


def evaluate_retrieval(
    workspace: Workspace,
    dataset: BeirDataset,
    *,
    collection: str | None = None,
    reuse: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Documents are ranked by their best chunk; returns metrics per mode plus ``ingest_seconds``."""
    name = collection or f"eval-{dataset.name}"
    if not reuse and workspace.registry.get_collection(name) is not None:
        workspace.drop(name)
    coll = workspace.collection(name, create=True)
    started = time.perf_counter()
    report = coll.ingest_documents(dataset.documents(), total=len(dataset.corpus), progress=progress)
    ingest_seconds = time.perf_counter() - started
    results: dict[str, Any] = {}
    for mode in SEARCH_MODES:
        run: dict[str, list[str]] = {}
        for qid, text in dataset.queries.items():
            hits = coll.search(text, k=CHUNKS_PER_QUERY, mode=mode, candidates=CHUNKS_PER_QUERY)
            run[qid] = [dataset.doc_id_of(h.source) for h in best_per_document(hits)[:DOCS_PER_QUERY]]
        results[mode] = score_run(run, dataset.qrels)
    results["ingest_seconds"] = round(ingest_seconds, 1)
    results["documents"] = len(dataset.corpus)
    results["chunks"] = coll.store.count()
    results["queries"] = len(dataset.queries)
    results["tokens_embedded"] = report.tokens_embedded
    results["embedding_model"] = coll.embedder.name
    return results
