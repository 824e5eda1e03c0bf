"""``lamina bench ingest --engine ray`` and ``lamina bench remote-embed``: where ingestion runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lamina.bench.engines import bench_remote_embedder, compare_engines
from lamina.cli.output import console, err_console, print_json
from lamina.config import ENGINE_NAMES, IngestEngineName
from lamina.evals.beir import load_beir


def engines_command(dataset: Path, limit_docs: int | None, as_json: bool) -> None:
    if not as_json:
        err_console.print("running the local engine, then the Ray engine, each in a child process …")
    result = compare_engines(dataset, limit_docs)
    if as_json:
        print_json(result)
        return
    table = Table("engine", "tokens/s", "seconds", "GFLOP/s", "peak RSS MB (all processes)", "driver RSS MB")
    for name, run in result["runs"].items():
        table.add_row(
            name,
            f"{run['tokens_per_s']:,.0f}",
            f"{run['seconds']:.1f}",
            f"{run['gflops']:.0f}",
            f"{run['tree_peak_rss_mb']:,.0f}",
            f"{run['driver_peak_rss_mb']:,.0f}",
        )
    console.print(table)
    ray: dict[str, Any] = result["runs"]["ray"]
    console.print(
        f"Ray / local tokens/s: {result['ray_vs_local_tokens_per_s']}x (goal ≥ 0.85x); "
        f"peak memory {result['ray_vs_local_peak_rss']}x. "
        f"{ray.get('actors', 1)} embedding actor(s), {result['tokens_per_s_per_actor']:,.0f} tokens/s "
        f"per actor while busy (busy {', '.join(f'{s:.0%}' for s in ray.get('actor_busy_share', []))} "
        f"of the run), on {ray['cores']} cores."
    )
    if ray.get("write_bound_tokens_per_s"):
        console.print(
            f"The driver's commits took {ray['write_seconds']:.1f} s of {ray['seconds']:.1f} s: one driver "
            f"writes at most ~{ray['write_bound_tokens_per_s']:,.0f} tokens/s to this store."
        )


def remote_embed(
    dataset: Annotated[
        Path, typer.Option("--dataset", "-d", exists=True, file_okay=False, help="Folder in BEIR layout.")
    ],
    limit_docs: Annotated[int, typer.Option("--limit-docs", min=1, help="First N documents.")] = 500,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", min=0, help="The stub server's latency per request.")
    ] = 50.0,
    concurrency: Annotated[
        str, typer.Option("--concurrency", help="Comma-separated embedding.concurrency values.")
    ] = "1,2,4,8",
    engine: Annotated[
        IngestEngineName, typer.Option("--engine", help=" or ".join(ENGINE_NAMES) + ".")
    ] = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ingestion tokens/s against a loopback embedding server with a fixed latency per request."""
    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    data = load_beir(dataset, limit_docs=limit_docs)
    rows = bench_remote_embedder(data, latency_s=latency_ms / 1000, concurrencies=levels, engine=engine)
    if as_json:
        print_json({"engine": engine, "rows": rows})
        return
    table = Table(
        "concurrency", "tokens/s", "× concurrency 1", "seconds", "requests", "max in flight",
        title=f"remote embedder, {latency_ms:g} ms per request, {engine} engine, {len(data.corpus)} docs",
    )  # fmt: skip
    base = rows[0]["tokens_per_s"] or 1
    for row in rows:
        table.add_row(
            str(row["concurrency"]),
            f"{row['tokens_per_s']:,.0f}",
            f"{row['tokens_per_s'] / base:.2f}",
            f"{row['seconds']:.1f}",
            str(row["requests"]),
            str(row["max_in_flight"]),
        )
    console.print(table)
