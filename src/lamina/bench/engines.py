"""``lamina bench ingest --engine ray``: the Ray engine against the local one, same corpus, one run.

Each engine runs in a child process of its own, so neither inherits the other's memory; the
parent samples the resident memory of the child's whole process tree (for Ray: the driver, the
GCS, the raylet and its workers), as a user's machine would see it. Start-up (loading the model,
starting Ray) is outside the timed part; the actors' own model load is inside it.

``lamina bench remote-embed`` measures ingestion against a loopback embedding server with a fixed
latency per request, at several ``embedding.concurrency`` values: what Lamina adds to a GPU
embedder's latency, not the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lamina.bench.ingest import achieved_gflops, peak_rss_mb
from lamina.config import ENGINE_NAMES, IngestEngineName, Settings, load_settings
from lamina.data.collection import Workspace
from lamina.data.engine import make_engine
from lamina.errors import LaminaError
from lamina.evals.beir import BeirDataset, load_beir
from lamina.testing.embed_stub import StubEmbedder, embedding_server


def run_engine(settings: Settings, dataset: BeirDataset) -> dict[str, Any]:
    """One timed ingestion of ``dataset`` with ``settings.ingest.engine`` (in this process)."""
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as tmp:
        workspace = Workspace(settings.scratch(Path(tmp)))
        coll = workspace.collection("bench", create=True)
        coll.embedder.embed(["warm up"])  # model load (and the derived graphs) is start-up cost
        engine = make_engine(settings.ingest)
        connect = getattr(engine, "connect", None)
        if connect is not None:
            connect()
        started = time.perf_counter()
        report = coll.ingest_documents(dataset.documents(), total=len(dataset.corpus), engine=engine)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "engine": engine.name,
        "documents": report.ingested,
        "chunks": report.chunks_written,
        "tokens_embedded": report.tokens_embedded,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(report.tokens_embedded / seconds, 1),
        "gflops": achieved_gflops(report.tokens_embedded, report.chunks_embedded, seconds),
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "write_seconds": report.write_seconds,
        "write_bound_tokens_per_s": round(report.tokens_embedded / report.write_seconds, 1)
        if report.write_seconds
        else None,
        "embedding_model": coll.embedder.name,
        "cores": os.cpu_count(),
    }
    actors = getattr(engine, "actor_stats", None)
    if actors:
        busy = [a for a in actors if a["busy_s"] > 0]
        result["actors"] = len(actors)
        result["actor_tokens_per_busy_s"] = [round(a["tokens"] / a["busy_s"], 1) for a in busy]
        result["actor_busy_share"] = [round(a["busy_s"] / seconds, 3) for a in busy]
    return result


def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1024 / 1024


def _child(engine: IngestEngineName, dataset: Path, limit_docs: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "lamina.bench.engines", engine, str(dataset)]
    if limit_docs is not None:
        cmd.append(str(limit_docs))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_mb(proc.pid))
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        tail = (err or out).strip().splitlines()[-1:] or ["no output"]
        raise LaminaError(f"the {engine} engine's benchmark failed: {tail[0]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["tree_peak_rss_mb"] = round(peak, 1)
    return result


def compare_engines(
    dataset: Path, limit_docs: int | None, engines: tuple[IngestEngineName, ...] = ENGINE_NAMES
) -> dict[str, Any]:
    """Each engine over the same corpus, one after the other on this machine."""
    try:
        import psutil  # noqa: F401  (comes with Ray)
    except ImportError:
        raise LaminaError("the engine comparison needs Ray: pip install 'lamina[ray]'") from None
    runs = {engine: _child(engine, dataset, limit_docs) for engine in engines}
    result: dict[str, Any] = {"runs": runs}
    if "local" in runs and "ray" in runs:
        local, ray = runs["local"], runs["ray"]
        result["ray_vs_local_tokens_per_s"] = round(ray["tokens_per_s"] / local["tokens_per_s"], 3)
        result["ray_vs_local_peak_rss"] = round(ray["tree_peak_rss_mb"] / local["tree_peak_rss_mb"], 2)
        per_actor = ray.get("actor_tokens_per_busy_s") or [ray["tokens_per_s"]]
        result["tokens_per_s_per_actor"] = round(sum(per_actor) / len(per_actor), 1)
    return result


def bench_remote_embedder(
    dataset: BeirDataset, *, latency_s: float, concurrencies: list[int], engine: IngestEngineName = "local"
) -> list[dict[str, Any]]:
    """Tokens/s of ingestion with a remote embedder answering each request after ``latency_s``."""
    rows = []
    for concurrency in concurrencies:
        stub = StubEmbedder(latency_s=latency_s, dim=384)
        with embedding_server(stub) as url:
            settings = load_settings(
                embedding={
                    "backend": "openai",
                    "base_url": url,
                    "model": "stub",
                    "dimensions": 384,
                    "concurrency": concurrency,
                },
                ingest={"engine": engine},
            )
            result = run_engine(settings, dataset)
        rows.append(
            {
                "concurrency": concurrency,
                "latency_ms": round(latency_s * 1000, 1),
                "tokens_per_s": result["tokens_per_s"],
                "seconds": result["seconds"],
                "requests": stub.requests,
                "max_in_flight": stub.max_in_flight,
                "tokens_embedded": result["tokens_embedded"],
            }
        )
    return rows


def main(argv: list[str]) -> None:
    engine, path, *rest = argv
    settings = load_settings()
    settings.ingest.engine = engine  # type: ignore[assignment]
    dataset = load_beir(Path(path), limit_docs=int(rest[0]) if rest else None)
    print(json.dumps(run_engine(settings, dataset)))


if __name__ == "__main__":
    main(sys.argv[1:])
