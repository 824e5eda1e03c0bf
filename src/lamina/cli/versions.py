"""Collection versions: reindex beside the live version, list, switch, roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lamina.cli.context import state
from lamina.cli.data import CollectionOpt, EngineOpt, JsonOpt, RayAddressOpt, print_report, use_engine
from lamina.cli.output import IngestProgress, console, err_console, print_json
from lamina.data.reindex import ReindexOptions
from lamina.data.reindex import reindex as build
from lamina.data.versions import READY, VersionInfo
from lamina.evals.beir import load_beir
from lamina.evals.retrieval import hybrid_ndcg

DatasetOpt = Annotated[
    Path | None,
    typer.Option("--dataset", "-d", exists=True, file_okay=False, help="A folder in BEIR layout."),
]


def reindex(
    collection: CollectionOpt,
    store: Annotated[
        str | None, typer.Option("--store", help="Store of the new version: lancedb, pgvector, memory.")
    ] = None,
    embedding_variant: Annotated[
        str | None, typer.Option("--embedding-variant", help="Local ONNX model variant: int8 or fp32.")
    ] = None,
    chunk_tokens: Annotated[int | None, typer.Option("--chunk-tokens", min=16, help="Chunk size.")] = None,
    overlap_tokens: Annotated[
        int | None, typer.Option("--overlap-tokens", min=0, help="Overlap between chunks.")
    ] = None,
    switch: Annotated[
        bool, typer.Option("--switch", help="Make the new version live when it is built.")
    ] = False,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            exists=True,
            file_okay=False,
            help="Build from this BEIR corpus (for a collection made by lamina eval retrieval).",
        ),
    ] = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a new version of a collection beside the live one (which keeps answering); resumable.

    Unset options keep the live version's settings. Vectors are copied, not re-embedded, when the
    embedder is the same. Then compare with `lamina versions` and make it live with `lamina switch`.
    """
    use_engine(engine, ray_address)
    options = ReindexOptions(store, embedding_variant, chunk_tokens, overlap_tokens)
    ws = state.workspace
    docs = total = None
    if dataset is not None:
        data = load_beir(dataset)
        docs, total = data.documents(), len(data.corpus)
    try:
        with IngestProgress(f"reindex {collection}", enabled=not as_json and err_console.is_terminal) as bar:
            result = build(ws, collection, options, documents=docs, total=total, progress=bar, switch=switch)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted.[/] Re-run the same command to resume the version.")
        raise typer.Exit(130) from None
    if as_json:
        print_json(result.to_dict())
    else:
        print_report(result.report)
        v = result.version
        done = "resumed and built" if result.resumed else "built"
        console.print(
            f"version {v.number} {done if v.state == READY else 'not finished'}: {v.spec.store}, "
            f"{v.spec.embedding_model}, {v.spec.chunk_tokens} tokens per chunk; "
            f"{result.vectors_copied} vectors copied"
        )
        if result.switched:
            console.print(f"version {v.number} is live")
        elif v.state == READY:
            console.print(f"make it live: lamina switch -c {collection} {v.number}")
    if result.report.status != "completed" or result.report.failed:
        raise typer.Exit(1)


def versions(collection: CollectionOpt, dataset: DatasetOpt = None, as_json: JsonOpt = False) -> None:
    """List a collection's versions; with --dataset, each one's hybrid nDCG@10 on that BEIR set."""
    ws = state.workspace
    ws.registry.require_collection(collection)
    found = ws.versions.list(collection)
    scores: dict[int, float] = {}
    if dataset is not None:
        data = load_beir(dataset)
        for v in found:
            if v.state == READY:
                scores[v.number] = hybrid_ndcg(ws.collection(collection, version=v.number), data)
    if as_json:
        print_json([v.to_dict() | ({"ndcg@10": scores.get(v.number)} if dataset else {}) for v in found])
        return
    table = Table("version", "state", "store", "embedder", "chunk/overlap", "documents", "chunks", "built")
    if dataset is not None:
        table.add_column("nDCG@10")
    for v in found:
        row = [_label(v), v.state, v.spec.store, v.spec.embedding_model, _chunking(v)]
        row += [str(v.documents), str(v.chunks), v.built_at or "-"]
        if dataset is not None:
            row.append(f"{scores[v.number]:.4f}" if v.number in scores else "-")
        table.add_row(*row)
    console.print(table)


def switch(
    collection: CollectionOpt,
    version: Annotated[int, typer.Argument(help="The version to make live.")],
    as_json: JsonOpt = False,
) -> None:
    """Make a version live, atomically (a request under way finishes on the version it started with)."""
    _show(state.workspace.versions.switch(collection, version), as_json)


def rollback(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """Make the previous live version live again."""
    _show(state.workspace.versions.rollback(collection), as_json)


def _show(v: VersionInfo, as_json: bool) -> None:
    if as_json:
        print_json(v.to_dict())
    else:
        console.print(
            f"{v.collection}: version {v.number} is live ({v.spec.store}, {v.spec.embedding_model})"
        )


def _label(v: VersionInfo) -> str:
    return f"{v.number}" + (" (live)" if v.live else " (previous)" if v.previous else "")


def _chunking(v: VersionInfo) -> str:
    return f"{v.spec.chunk_tokens}/{v.spec.overlap_tokens}"
