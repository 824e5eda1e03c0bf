"""``lamina bench ingest|generate|gateway|search|sources|ocr``: performance benchmarks (from
``lamina.bench``), each next to a baseline measured in the same run where there is one.
``bench_engines`` adds the commands about where ingestion runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lamina.bench.generation import bench_generation, local_model
from lamina.bench.hardware import machine_peaks
from lamina.bench.ingest import bench_baseline, bench_lamina
from lamina.cli import bench_engines, bench_ocr
from lamina.cli.context import state
from lamina.cli.options import DatasetOpt, JsonOpt, LimitOpt
from lamina.cli.output import IngestProgress, console, err_console, print_json
from lamina.config import IngestEngineName
from lamina.evals.beir import load_beir

bench_app = typer.Typer(help="Performance benchmarks.", no_args_is_help=True)


@bench_app.command("ingest")
def bench_ingest(
    dataset: DatasetOpt,
    limit_docs: LimitOpt = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also run plain sentence-transformers (needs lamina[st]).")
    ] = False,
    engine: Annotated[
        IngestEngineName | None,
        typer.Option("--engine", help="ray: the Ray engine against the local one, each in a child process."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingestion throughput (docs/s, chunks/s, tokens/s) and peak RSS, optionally against a baseline."""
    if engine == "ray":
        bench_engines.engines_command(dataset, limit_docs, as_json)
        return
    data = load_beir(dataset, limit_docs=limit_docs)
    with IngestProgress(f"bench {data.name}", enabled=not as_json and err_console.is_terminal) as bar:
        result: dict[str, Any] = {"lamina": bench_lamina(state.settings, data, progress=bar)}
    if baseline:
        if not as_json:
            err_console.print("running the sentence-transformers baseline …")
        result["baseline"] = bench_baseline(dataset, limit_docs)
        result["speedup_tokens_per_s"] = round(
            result["lamina"]["tokens_per_s"] / result["baseline"]["tokens_per_s"], 2
        )
        result["rss_ratio"] = round(result["lamina"]["peak_rss_mb"] / result["baseline"]["peak_rss_mb"], 2)
    if not as_json:
        err_console.print("measuring the machine's GEMM peak (fp32 and int8) …")
    machine = result["machine"] = machine_peaks()  # after the runs: its buffers stay out of their RSS
    if as_json:
        print_json(result)
        return
    table = Table(
        "pipeline",
        "docs/s",
        "chunks/s",
        "tokens/s",
        "GFLOP/s",
        "seconds",
        "peak RSS MB",
        title=f"ingest {data.name}",
    )
    for name in ("lamina", "baseline"):
        if r := result.get(name):
            table.add_row(
                f"{name}: {r['embedding_model']}",
                f"{r['docs_per_s']:.1f}",
                f"{r.get('chunks_per_s', '-')}",
                f"{r['tokens_per_s']:,.0f}",
                f"{r['gflops']:.0f}",
                f"{r['seconds']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            )
    console.print(table)
    console.print(
        f"machine ({machine['cores']:.0f} cores), ONNX Runtime GEMM peak: "
        f"fp32 {machine['fp32_gemm_gflops']:.0f} GFLOP/s, int8 {machine['int8_gemm_gops']:.0f} GOP/s"
    )
    if "speedup_tokens_per_s" in result:
        console.print(
            f"tokens/s speed-up over the baseline: {result['speedup_tokens_per_s']}x; "
            f"peak RSS {result['rss_ratio']}x the baseline's"
        )


@bench_app.command("generate")
def bench_generate(
    model: Annotated[str | None, typer.Option("--model", "-m", help="A configured llamacpp model.")] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=8, help="Tokens generated per request.")
    ] = 64,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Runs per path (median reported).")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Tokens/s and time to first token, Lamina vs xllamacpp directly; 4 concurrent requests vs sequential."""
    from lamina.engine.model import Models

    llm = local_model(state.settings, model)
    models = Models(state.settings)
    try:
        result = bench_generation(llm, models.get(llm.name), max_tokens=max_tokens, repeats=repeats)
    finally:
        models.close()
    if as_json:
        print_json(result)
        return
    table = Table("path", "tokens/s", "TTFT ms", "tokens", title=f"generation: {llm.name}")
    for name in ("direct", "lamina"):
        r = result[name]
        table.add_row(
            "xllamacpp direct" if name == "direct" else "lamina",
            f"{r['tokens_per_s']:.1f}",
            f"{r['ttft_ms']:.0f}",
            str(r["completion_tokens"]),
        )
    console.print(table)
    c = result["concurrency"]
    console.print(
        f"lamina / direct tokens/s: {result['lamina_vs_direct_tokens_per_s']:.3f}  ·  "
        f"{c['requests']} concurrent: {c['concurrent_tokens_per_s']:.1f} tok/s vs sequential "
        f"{c['sequential_tokens_per_s']:.1f} tok/s ({c['speedup']}x)"
    )


bench_app.command("remote-embed")(bench_engines.remote_embed)
bench_app.command("ocr")(bench_ocr.ocr)


@bench_app.command("gateway")
def bench_gateway_command(
    duration_s: Annotated[
        float, typer.Option("--duration", min=1, help="Seconds per open-loop phase.")
    ] = 5.0,
    rate: Annotated[
        float, typer.Option(min=1, help="Open-loop rate (req/s) for the fixed-rate phase.")
    ] = 200.0,
    delay_ms: Annotated[float, typer.Option(min=0, help="The stub upstream's delay before answering.")] = 0.0,
    scenarios: Annotated[
        str | None,
        typer.Option(
            help="Instead: run these scenarios (comma-separated: overload, fairness, budget_race, "
            "faults, soak; or all), each against its own server on stub upstreams."
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(min=1, max=8, help="Instead: N replicas on shared state (see --state), one run."),
    ] = None,
    shared: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="With --replicas: sqlite, postgres, postgres+redis (comma-separated; default all).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Latency Lamina adds over a stub upstream (auth and request log on): direct vs through Lamina;
    or, with --scenarios, how it holds under overload, unfair load, budget races, faults and a soak;
    or, with --replicas/--state, N replicas on SQLite, Postgres or Postgres + Redis side by side."""
    import tempfile

    if replicas is not None or shared is not None:
        _bench_replicas(replicas or 2, shared, duration_s, as_json)
        return

    from lamina.bench.gateway import bench_gateway
    from lamina.bench.gateway_process import lamina_gateway
    from lamina.bench.gateway_scenarios import SCENARIOS, run_scenarios, stub_model
    from lamina.testing.stub_upstream import StubUpstream

    if scenarios:
        names = list(SCENARIOS) if scenarios == "all" else [s.strip() for s in scenarios.split(",")]
        unknown = sorted(set(names) - set(SCENARIOS))
        if unknown:
            raise typer.BadParameter(f"unknown scenario {unknown}; choose from {', '.join(SCENARIOS)} or all")
        outcome = run_scenarios(names, lambda msg: err_console.print(msg, highlight=False))
        if as_json:
            print_json(outcome)
        else:
            for name, numbers in outcome.items():
                console.print(f"[bold]{name}[/]", highlight=False)
                console.print_json(data=numbers)
        return
    with (
        StubUpstream("ok", delay_ms=delay_ms) as stub,
        tempfile.TemporaryDirectory(prefix="lamina-bench-gateway-") as tmp,
        lamina_gateway(
            Path(tmp),
            "[serve]\nmax_inflight = 1024\n\n" + stub_model("stub", stub.base_url),
            {"bench": ["--admin"]},
        ) as gateway,
    ):
        url, key = gateway.root + "/v1", gateway.keys["bench"]
        result = bench_gateway(
            stub.base_url, url, "stub-key", key, "stub", "stub", duration_s=duration_s, rate=rate
        )
    if as_json:
        print_json(result)
        return
    table = Table("phase", "direct p50/p95/p99 ms", "Lamina p50/p95/p99 ms", "added p50/p95/p99 ms")
    for phase in ("sequential", "open_loop", "stream_ttft"):
        r = result[phase]
        table.add_row(phase, *(_triple(r[side]) for side in ("direct", "gateway", "added")))
    console.print(table)
    console.print(
        f"highest rate with added p99 under 20 ms: {result['max_rate']['max_sustained_rate']} req/s"
    )
    apis = Table(
        "API (concurrency 1)", "whole p50/p95/p99 ms", "added", "stream TTFT p50/p95/p99 ms", "added"
    )
    for api in ("chat", "responses", "messages"):
        whole, streamed = result["apis"]["whole"][api], result["apis"]["stream_ttft"][api]
        apis.add_row(
            api, _triple(whole), _triple(whole["added"]), _triple(streamed), _triple(streamed["added"])
        )
    console.print(apis)


def _bench_replicas(replicas: int, shared: str | None, duration_s: float, as_json: bool) -> None:
    import tempfile

    from lamina.bench.replicas import STATES, bench_replicas

    states = [s.strip() for s in shared.split(",")] if shared else list(STATES)
    unknown = sorted(set(states) - set(STATES))
    if unknown:
        raise typer.BadParameter(f"unknown state {unknown}; choose from {', '.join(STATES)}")
    settings = state.settings
    with tempfile.TemporaryDirectory(prefix="lamina-bench-replicas-") as tmp:
        result = bench_replicas(
            Path(tmp),
            states,
            replicas,
            duration_s=duration_s,
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            progress=lambda msg: err_console.print(msg, highlight=False),
        )
    if as_json:
        print_json(result)
        return
    m = result["machine"]
    console.print(f"{m['cpu']}, {m['cores']} cores ({', '.join(m['vector'])}); {replicas} replicas")
    table = Table(
        "state",
        "added p50/p99 ms (c=1)",
        *(f"req/s {k.replace('_', ' ')}" for k in next(iter(result["states"].values()))["throughput"]),
        "budget race: overspent (reservations)",
        "overload: goodput req/s · 5xx",
        "fairness: B's p50 beside A's flood",
    )
    for name, row in result["states"].items():
        added = row["sequential"]["added"]
        table.add_row(
            name,
            f"{added['p50_ms']:.2f} / {added['p99_ms']:.2f}",
            *(f"{t['req_per_s']:g}" for t in row["throughput"].values()),
            f"{row['budget_race']['overspent_reservations']:g}",
            f"{row['overload']['goodput_rps']:g} · {row['overload']['server_errors_5xx']}",
            f"{row['fairness']['b_p50_ratio']}x of alone",
        )
    console.print(table)


def _triple(stats: dict[str, Any]) -> str:
    return " / ".join("-" if stats[p] is None else f"{stats[p]:.2f}" for p in ("p50_ms", "p95_ms", "p99_ms"))


@bench_app.command("search")
def bench_search_command(
    dataset: DatasetOpt,
    stores: Annotated[
        str,
        typer.Option(
            "--store",
            help="Stores, comma-separated: lancedb, pgvector (Postgres: database_url or a pgserver).",
        ),
    ] = "lancedb,pgvector",
    sizes: Annotated[
        str, typer.Option(help="Corpus sizes in chunks, comma-separated.")
    ] = "10000,100000,300000",
    queries: Annotated[int, typer.Option(min=5, help="Queries timed per size and filter.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid query p50/p99 (with the query's embedding), ANN recall@10 against exact search, and rows
    returned under a 10% and a 1% source filter, a 1% metadata filter and a reader's permissions (10%
    of the rows), per store and corpus size; load and index build times.

    The corpus is the dataset's chunks (embedded once, kept under the data directory) plus generated
    variants up to each size.
    """
    import tempfile

    from lamina.bench.search import STORES, bench_search, table_rows

    chosen = [s.strip() for s in stores.split(",") if s.strip()]
    if unknown := sorted(set(chosen) - set(STORES)):
        raise typer.BadParameter(f"unknown store {unknown}; choose from {', '.join(STORES)}")
    try:
        counts = [int(s.replace("_", "")) for s in sizes.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--sizes takes whole numbers, comma-separated, not {sizes!r}") from None
    settings = state.settings
    with tempfile.TemporaryDirectory(prefix="lamina-bench-search-") as tmp:
        result = bench_search(
            Path(tmp),
            load_beir(dataset),
            stores=chosen,
            sizes=counts,
            queries=queries,
            settings=settings,
            database_url=settings.store.url or settings.database_url,
            progress=lambda msg: err_console.print(msg, highlight=False),
        )
    if as_json:
        print_json(result)
        return
    m = result["machine"]
    console.print(
        f"{m['cpu']}, {m['cores']} cores ({', '.join(m['vector'])}); {result['queries']} queries, k=10"
    )
    table = Table(
        "store", "chunks", "filter", "hybrid p50 / p99 ms", "in sequence p50 ms", "p50 dense · bm25 ms",
        "recall@10", "rows returned (dense · bm25)", "load + index s", "on disk MiB",
    )  # fmt: skip
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)


@bench_app.command("sources")
def bench_sources_command(
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            "-d",
            exists=True,
            file_okay=False,
            help="Folder in BEIR layout whose first documents fill the sources (default: paragraphs "
            "made from the bundled samples).",
        ),
    ] = None,
    docs: Annotated[int, typer.Option("--docs", min=2, max=5000, help="Documents in each source.")] = 50,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Source kinds to measure: folder, web, git, s3, webdav (default all)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sync time of each source kind against a real local server (folder, web site, git, S3, WebDAV)
    filled with N documents: the first sync, a re-sync with nothing changed, and a re-sync after one
    document changed and another was deleted."""
    from lamina.bench.sources import bench_sources, dataset_texts, sample_texts, table_rows
    from lamina.data.connectors import SOURCE_KINDS

    kinds = kind or list(SOURCE_KINDS)
    if unknown := sorted(set(kinds) - set(SOURCE_KINDS)):
        raise typer.BadParameter(f"unknown kind {unknown}; choose from {', '.join(SOURCE_KINDS)}")
    if dataset is not None:
        data = load_beir(dataset, limit_docs=docs)
        texts, text_source = dataset_texts(data.corpus, docs), data.name
        if len(texts) < docs:
            raise typer.BadParameter(f"{dataset} has only {len(texts)} documents; --docs {docs} needs more")
    else:
        texts, text_source = sample_texts(docs), "samples"
    result = bench_sources(
        state.settings,
        texts,
        kinds=kinds,
        text_source=text_source,
        progress=lambda msg: err_console.print(msg, highlight=False),
    )
    if as_json:
        print_json(result)
        return
    m = result["machine"]
    console.print(
        f"{m['cpu']}, {m['cores']} cores ({', '.join(m['vector'])}); {result['documents']} documents "
        f"({result['texts']}) per source, store {result['store']}, {result['embedding_model']}",
        highlight=False,
    )
    table = Table(
        "kind", "listed", "first sync s", "docs/s", "unchanged re-sync s", "change + delete re-sync s",
        "ingested · unchanged · deleted",
    )  # fmt: skip
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)


@bench_app.command("routing")
def bench_routing_command(
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            "-d",
            exists=True,
            file_okay=False,
            help="Folder in BEIR layout whose documents make the system prompts (default: the bundled "
            "samples).",
        ),
    ] = None,
    tenants: Annotated[
        int, typer.Option(min=1, max=64, help="Tenants, each with its own system prompt.")
    ] = 8,
    prompt_chars: Annotated[
        int, typer.Option(min=100, max=12000, help="Characters of each system prompt (4,400: ~1,000 tokens).")
    ] = 4400,
    conversations: Annotated[int, typer.Option(min=1, help="Conversations per phase.")] = 12,
    turns: Annotated[int, typer.Option(min=1, max=16, help="Turns (questions) per conversation.")] = 3,
    rate: Annotated[float, typer.Option(min=0.001, help="New conversations a second (Poisson).")] = 0.25,
    think_s: Annotated[
        float, typer.Option(min=0, help="Mean pause (exponential) between an answer and the next turn.")
    ] = 1.0,
    max_tokens: Annotated[int, typer.Option(min=1, max=512, help="Tokens per answer.")] = 16,
    parallel: Annotated[int, typer.Option(min=1, max=8, help="Slots of each llama.cpp endpoint.")] = 2,
    busy_tokens: Annotated[
        int, typer.Option(min=1, help="Tokens of each completion that keeps an endpoint busy.")
    ] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the schedule every phase replays.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Weighted against prefix routing, in one run: two local llama.cpp endpoints of the bundled model
    (one thread each), tenants with ~1,000-token system prompts in multi-turn conversations arriving
    open loop; TTFT, completion time, throughput and each endpoint's share, then the same with one
    endpoint kept busy from outside Lamina (only the load guard sees it)."""
    import tempfile

    from lamina.bench.routing import bench_routing, table_rows
    from lamina.bench.sources import dataset_texts, sample_texts

    wanted = tenants * 8  # texts to draw each tenant's own run from
    if dataset is not None:
        data = load_beir(dataset, limit_docs=wanted)
        texts, text_source = dataset_texts(data.corpus, wanted), data.name
    else:
        texts, text_source = sample_texts(wanted), "samples"
    settings = state.settings
    with tempfile.TemporaryDirectory(prefix="lamina-bench-routing-") as tmp:
        result = bench_routing(
            Path(tmp),
            settings.data_dir / "models",
            texts,
            text_source=text_source,
            tenants=tenants,
            prompt_chars=prompt_chars,
            conversations=conversations,
            turns=turns,
            rate=rate,
            think_s=think_s,
            max_tokens=max_tokens,
            parallel=parallel,
            busy_tokens=busy_tokens,
            seed=seed,
            progress=lambda msg: err_console.print(msg, highlight=False),
        )
    if as_json:
        print_json(result)
        return
    m, c = result["machine"], result["config"]
    console.print(
        f"{m['cpu']}, {m['cores']} cores ({', '.join(m['vector'])}); 2 llama.cpp endpoints (1 thread, "
        f"{c['parallel']} slots each); {c['tenants']} tenants, ~{c['system_prompt_chars']:,}-char system "
        f"prompts ({c['texts']}); {c['conversations']} conversations x {c['turns']} turns at "
        f"{c['rate_conversations_per_s']:g}/s, think {c['think_s']:g} s, {c['max_tokens']} tokens an answer; "
        f"overloaded: endpoint {c['busy_endpoint']} kept busy by {c['busy_streams']} outside streams",
        highlight=False,
    )
    table = Table(
        "phase", "requests", "TTFT mean / p95 s", "completion mean s", "req/s", "output tok/s",
        "share A / B", "prompt tokens computed · cached", "routing decisions",
    )  # fmt: skip
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
