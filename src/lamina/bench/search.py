"""``lamina bench search``: hybrid query latency, ANN recall and filtered row counts, by store and size.

The corpus is SciFact through the real pipeline (embedded once, kept in the bench's data directory
so a later run reuses it), grown to each size with generated variants: a variant of a chunk drops a
tenth of its words and moves its vector a little (cosine about 0.97 to the original), so the index
holds clusters of near-duplicates, as a real corpus of revisions does. Every chunk's source puts it
in one of 10 "tenants" and one of 10 groups within, so a tenant filter selects 10% of the rows and
a tenant-and-group filter 1%. Every chunk also carries metadata (``{"group": i % 100}``: the
metadata filter ``{"group": 7}`` keeps 1% of the rows) and readers, as a synced source gives them:
9% of the rows name no readers (anyone may read them) and each other row is readable by one of 91
teams (``r0`` .. ``r90``) and by ``auditors``; a reader in team ``r7`` may read 10% of the rows, its
team's 1% and the 9% everyone may.

Per store and size: load time (one transaction per batch, as ingestion writes), index build time,
size on disk; p50/p99 of ``Collection.search`` (hybrid, including the query's embedding; its BM25
leg runs beside the embedding and the dense leg), next to the baseline of the same three steps one
after the other, with no filter, the tenant filter, the 1% filter, the 1% metadata filter and the
permission filter of a reader in team ``r7``; ANN recall@10 of dense search against exact search
over the same rows (filtered: exact over the filtered rows), taken from the candidates a search
asks each leg for (``search.candidates``, 100: what ``Collection.search`` gets); and how many of
those candidates a filtered query returned.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from lamina.bench.hardware import machine
from lamina.config import Settings
from lamina.data.chunking import Chunker
from lamina.data.collection import Collection, Workspace
from lamina.data.filters import parse_filter
from lamina.data.store import ChunkStore, Where
from lamina.data.types import Chunk, attrs_json
from lamina.evals.beir import BeirDataset

SIZES = (10_000, 100_000, 300_000)
STORES = ("lancedb", "pgvector")
K = 10
BATCH = 2_000
NOISE = 0.25  # norm of the random move that makes a variant's vector
PUBLIC = 91  # rows with i % 100 at or past this name no readers: 9% of the rows, readable by anyone
FILTERS: dict[str, Where | None] = {
    "none": None,
    "tenant (10%)": Where(source_glob="/t3/*"),
    "1%": Where(source_glob="/t3/g7/*"),
    "metadata (1%)": Where(fields=parse_filter({"group": 7})),
    "readers r7 (10%: 1% + 9% public)": Where(readers=frozenset({"r7"})),
}
# the rows each filter keeps, from the layout ``grow`` makes (not by asking the store)
KEEPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda i: np.ones(len(i), dtype=bool),
    "tenant (10%)": lambda i: (i % 100) // 10 == 3,
    "1%": lambda i: ((i % 100) // 10 == 3) & (i % 10 == 7),
    "metadata (1%)": lambda i: i % 100 == 7,
    "readers r7 (10%: 1% + 9% public)": lambda i: (i % 100 == 7) | (i % 100 >= PUBLIC),
}


def _group(i: int) -> tuple[int, int]:
    """(tenant, group) of generated row ``i``: each of 100 combinations gets 1% of the rows."""
    return (i % 100) // 10, i % 10


def _readers(i: int) -> tuple[str, ...]:
    """Who may read row ``i``: no one named (anyone) for 9% of the rows, else its team and the auditors."""
    team = i % 100
    return () if team >= PUBLIC else (f"r{team}", "auditors")


def base_corpus(
    ws: Workspace, dataset: BeirDataset, progress: Callable[[str], None]
) -> tuple[list[Chunk], np.ndarray]:
    """The dataset's chunks and vectors, from the collection ``bench-<name>`` (ingested once).

    Vectors of ``lamina eval retrieval``'s collection of the same dataset are copied when it exists.
    """
    coll = ws.collection(f"bench-{dataset.name}", create=True)
    evaluated = ws.registry.get_collection(f"eval-{dataset.name}")
    if evaluated is not None and evaluated.embedding_model == coll.embedder.name:
        coll.donors = [ws.collection(evaluated.name).store]
    if coll.store.count() == 0:
        progress(f"chunking and embedding {len(dataset.corpus)} documents once (kept for later runs)")
    coll.ingest_documents(dataset.documents(), total=len(dataset.corpus))
    chunking = coll.chunking
    chunker = Chunker(
        coll.embedder.count_tokens,
        chunk_tokens=min(chunking.chunk_tokens, coll.embedder.max_tokens),
        overlap_tokens=chunking.overlap_tokens,
    )
    chunks = [c for doc in dataset.documents() for c in chunker.chunk(doc)]
    stored = coll.store.reused_vectors([c.embed_hash for c in chunks])
    chunks = [c for c in chunks if c.embed_hash in stored]
    return chunks, np.asarray([stored[c.embed_hash] for c in chunks], dtype=np.float32)


def grow(
    chunks: list[Chunk], vectors: np.ndarray, size: int, seed: int = 7
) -> tuple[list[Chunk], np.ndarray]:
    """``size`` rows: the base chunks, then variants of them, each placed in a tenant and a group,
    with metadata and readers."""
    rng = np.random.default_rng(seed)
    out: list[Chunk] = []
    rows = np.empty((size, vectors.shape[1]), dtype=np.float32)
    for i in range(size):
        b, variant = i % len(chunks), i // len(chunks)
        base = chunks[b]
        tenant, group = _group(i)
        text = base.text
        if variant:
            words = base.text.split()
            keep = rng.random(len(words)) >= 0.1
            text = " ".join(w for w, k in zip(words, keep, strict=True) if k) or base.text
            move = np.asarray(rng.standard_normal(vectors.shape[1]), dtype=np.float32)
            v = vectors[b] + NOISE * move / np.linalg.norm(move)
            rows[i] = v / np.linalg.norm(v)
        else:
            rows[i] = vectors[b]
        source = f"/t{tenant}/g{group}/{base.source.split(':', 1)[-1]}~{variant}"
        out.append(
            dataclasses.replace(
                base,
                source=source,
                doc_id=source,
                text=text,
                attrs=attrs_json({"group": i % 100}),
                readers=_readers(i),
            )
        )
    return out, rows


def _selected(size: int, label: str) -> np.ndarray:
    """Row indexes the filter ``label`` keeps (computed from the layout, not by asking the store)."""
    rows = np.arange(size)
    return np.asarray(rows[KEEPS[label](rows)])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _disk_mib(store: ChunkStore, settings: Settings, name: str) -> float | None:
    engine = getattr(store, "engine", None)
    if engine is not None:  # pgvector: the chunks table, its postings, and their indexes
        with engine.connect() as conn:
            size = conn.exec_driver_sql(
                "SELECT pg_total_relation_size(%s) + pg_total_relation_size(%s)",
                (f'"lc_{name}"', f'"lc_{name}_terms"'),
            ).scalar()
        return round(float(size or 0) / 2**20, 1)
    folder = settings.vectors_dir / f"{name}.lance"
    if folder.exists():
        return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)
    return None


def measure(
    coll: Collection,
    chunks: list[Chunk],
    rows: np.ndarray,
    queries: list[str],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    store = coll.store
    store.drop()
    started = time.perf_counter()
    for begin in range(0, len(chunks), BATCH):
        part = chunks[begin : begin + BATCH]
        store.replace_documents([c.source for c in part], part, rows[begin : begin + BATCH])
    loaded = time.perf_counter() - started
    progress(f"  loaded {len(chunks):,} rows in {loaded:.1f}s; building the index")
    started = time.perf_counter()
    store.optimize()
    built = time.perf_counter() - started
    qvecs = coll.embedder.embed(queries)
    out: dict[str, Any] = {
        "rows": len(chunks),
        "load_s": round(loaded, 1),
        "index_build_s": round(built, 1),
        "disk_mib": _disk_mib(store, coll.settings, coll.key),
        "filters": {},
    }
    for label, where in FILTERS.items():
        for q in queries[:3]:  # warm caches and the planner
            coll.search(q, K, mode="hybrid", where=where)
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            coll.search(q, K, mode="hybrid", where=where)
            latencies.append((time.perf_counter() - t0) * 1000)
        keep = _selected(len(chunks), label)
        recall, returned, lexical_returned = [], [], []
        legs: dict[str, list[float]] = {"dense": [], "bm25": [], "in_sequence": []}
        n = coll.settings.search.candidates  # what every search asks each leg for (k is at most n)
        for qi, qv in enumerate(qvecs):
            t0 = time.perf_counter()
            coll.embedder.embed([queries[qi]])
            t1 = time.perf_counter()
            dense = store.dense(qv, n, where)
            t2 = time.perf_counter()
            lexical = store.lexical(queries[qi], n, where)
            t3 = time.perf_counter()
            legs["dense"].append((t2 - t1) * 1000)
            legs["bm25"].append((t3 - t2) * 1000)
            legs["in_sequence"].append((t3 - t0) * 1000)  # the baseline: embedding, then each leg
            exact = keep[np.argsort(-(rows[keep] @ qv), kind="stable")[:K]]
            want = {chunks[i].chunk_id for i in exact}
            recall.append(len(want & {h.chunk_id for h in dense[:K]}) / len(want))
            returned.append(len(dense))
            lexical_returned.append(len(lexical))
        out["filters"][label] = {
            "rows_selected": len(keep),
            "hybrid_p50_ms": round(statistics.median(latencies), 2),
            "hybrid_p99_ms": round(_percentile(latencies, 0.99), 2),
            "in_sequence_p50_ms": round(statistics.median(legs["in_sequence"]), 2),
            "dense_p50_ms": round(statistics.median(legs["dense"]), 2),
            "bm25_p50_ms": round(statistics.median(legs["bm25"]), 2),
            "recall_at_10": round(float(np.mean(recall)), 4),
            "candidates": n,
            "dense_rows_of_candidates": round(float(np.mean(returned)), 2),
            "bm25_rows_of_candidates": round(float(np.mean(lexical_returned)), 2),
        }
        f = out["filters"][label]
        progress(
            f"  filter {label}: hybrid p50 {f['hybrid_p50_ms']} ms (in sequence "
            f"{f['in_sequence_p50_ms']}; dense {f['dense_p50_ms']}, "
            f"bm25 {f['bm25_p50_ms']}), recall@10 {f['recall_at_10']}, "
            f"{f['dense_rows_of_candidates']}/{n} rows"
        )
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def bench_search(
    work: Path,
    dataset: BeirDataset,
    *,
    stores: list[str],
    sizes: list[int],
    queries: int = 100,
    settings: Settings,
    database_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every (store, size) in the workspace of ``settings`` (which keeps the embedded base corpus);
    ``work`` holds a Postgres started for the run when ``database_url`` is not given."""
    from lamina.bench.replicas import Backing

    with ExitStack() as stack:
        url = None
        if "pgvector" in stores:
            url = Backing(work, stack, database_url, None).database()
        settings = settings.model_copy(deep=True)
        settings.store.url = url or settings.store.url
        ws = Workspace(settings)
        chunks, vectors = base_corpus(ws, dataset, progress)
        texts = list(dataset.queries.values())[:queries]
        result: dict[str, Any] = {
            "machine": machine(),
            "base_chunks": len(chunks),
            "queries": len(texts),
            "runs": [],
        }
        for size in sizes:
            grown, rows = grow(chunks, vectors, size)
            for backend in stores:
                progress(f"{backend}, {size:,} rows")
                name = f"bench-search-{backend}-{size}"
                ws.settings.store.backend = backend
                if ws.registry.get_collection(name) is not None:
                    ws.drop(name)
                coll = ws.collection(name, create=True)
                try:
                    result["runs"].append(
                        {"store": backend, "size": size, **measure(coll, grown, rows, texts, progress)}
                    )
                finally:
                    ws.drop(name)
        ws.registry.close()
    return result


def table_rows(result: dict[str, Any]) -> Iterator[list[str]]:
    """Rows for the CLI's table: one per store, size and filter."""
    for run in result["runs"]:
        for label, f in run["filters"].items():
            yield [
                run["store"],
                f"{run['size']:,}",
                label,
                f"{f['hybrid_p50_ms']:.1f} / {f['hybrid_p99_ms']:.1f}",
                f"{f['in_sequence_p50_ms']:.1f}",
                f"{f['dense_p50_ms']:.1f} · {f['bm25_p50_ms']:.1f}",
                f"{f['recall_at_10']:.3f}",
                f"{f['dense_rows_of_candidates']:g} · {f['bm25_rows_of_candidates']:g} of {f['candidates']}",
                f"{run['load_s']:g} + {run['index_build_s']:g}",
                f"{run['disk_mib']}",
            ]
