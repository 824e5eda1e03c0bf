"""``lamina bench ingest``: throughput and memory of the real ingestion pipeline.

With ``baseline`` it also runs plain sentence-transformers over the same documents (each cut at
the model's 256 tokens, as sentence-transformers does) in a child process, so both numbers come
from the same machine in the same run and neither pollutes the other's peak RSS.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lamina.bench.hardware import flop_per_token
from lamina.config import Settings
from lamina.data.collection import Workspace
from lamina.data.progress import Progress
from lamina.errors import LaminaError
from lamina.evals.beir import BeirDataset


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_lamina(
    settings: Settings, dataset: BeirDataset, progress: Progress | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as tmp:
        workspace = Workspace(settings.scratch(Path(tmp)))
        coll = workspace.collection("bench", create=True)
        coll.embedder.embed(["warm up"])  # model load is start-up cost, not throughput
        started = time.perf_counter()
        report = coll.ingest_documents(dataset.documents(), total=len(dataset.corpus), progress=progress)
        seconds = time.perf_counter() - started
    return {
        "documents": report.ingested,
        "chunks": report.chunks_written,
        "tokens_embedded": report.tokens_embedded,
        "seconds": round(seconds, 2),
        "docs_per_s": round(report.ingested / seconds, 2),
        "chunks_per_s": round(report.chunks_written / seconds, 2),
        "tokens_per_s": round(report.tokens_embedded / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "embedding_model": coll.embedder.name,
        "gflops": achieved_gflops(report.tokens_embedded, report.chunks_embedded, seconds),
    }


def achieved_gflops(tokens: int, sequences: int, seconds: float) -> float:
    """Useful arithmetic per second: MiniLM's FLOPs for these tokens (padding not counted)."""
    if not tokens or not sequences or seconds <= 0:
        return 0.0
    return round(tokens * flop_per_token(tokens / sequences + 2) / seconds / 1e9, 1)


def bench_baseline(dataset_path: Path, limit_docs: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lamina.bench.st_baseline", str(dataset_path)]
    if limit_docs is not None:
        cmd.append(str(limit_docs))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LaminaError(f"the sentence-transformers baseline failed: {tail[0]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
