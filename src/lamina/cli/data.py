"""Data-layer commands: ingest, search, collections, documents, drop."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from lamina.cli.context import state
from lamina.cli.options import FilterOpt
from lamina.cli.output import IngestProgress, console, err_console, print_hits, print_json
from lamina.config import ENGINE_NAMES, IngestEngineName
from lamina.data.collection import SearchMode
from lamina.data.filters import cli_value, parse_cli_filters
from lamina.data.progress import IngestReport
from lamina.data.registry import DocumentRecord
from lamina.data.store.base import Where
from lamina.errors import LaminaError

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
EngineOpt = Annotated[
    IngestEngineName | None,
    typer.Option(
        "--engine",
        help=f"Where to extract and embed: {' or '.join(ENGINE_NAMES)} (ray needs lamina\\[ray]). "
        "Default: ingest.engine",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Ray cluster: auto, ray://host:10001 or host:port. Unset: a local Ray instance."
    ),
]


def use_engine(engine: IngestEngineName | None, ray_address: str | None) -> None:
    """``--engine`` and ``--ray-address`` over ``[ingest]``; an address alone means Ray."""
    ingest_settings = state.settings.ingest
    if ray_address is not None:
        ingest_settings.ray_address = ray_address
        ingest_settings.engine = "ray"
    if engine is not None:
        ingest_settings.engine = engine


def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders (recursive) and http(s) URLs.")],
    collection: CollectionOpt,
    sync: Annotated[
        bool, typer.Option("--sync", help="Delete documents that are gone from these folders.")
    ] = False,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="Only files matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="Skip files matching this glob (repeatable).")
    ] = None,
    allow_private: Annotated[
        bool,
        typer.Option("--allow-private", help="Allow URLs on private/loopback addresses (SSRF guard off)."),
    ] = False,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            "--meta", help="Metadata for every document, key=value (repeatable): --meta team=finance."
        ),
    ] = None,
    readers: Annotated[
        list[str] | None,
        typer.Option("--reader", help="A group that may read the documents (repeatable); none: everyone."),
    ] = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Extract, chunk, embed and load documents into a collection (incremental, resumable)."""
    use_engine(engine, ray_address)
    ingest_settings = state.settings.ingest
    if include:
        ingest_settings.include = include
    if exclude:
        ingest_settings.exclude = [*ingest_settings.exclude, *exclude]
    coll = state.workspace.collection(collection, create=True)
    try:
        with IngestProgress(f"ingest → {collection}", enabled=not as_json and err_console.is_terminal) as bar:
            report = coll.ingest(
                sources,
                sync=sync,
                allow_private=allow_private or None,
                progress=bar,
                metadata=cli_metadata(meta or []),
                readers=readers,
            )
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]interrupted.[/] Finished batches are saved; re-run the same command to resume."
        )
        raise typer.Exit(130) from None
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
    if report.failed:
        raise typer.Exit(1)


def cli_metadata(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values read as the filters read them (numbers, booleans, quoted text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sign, value = item.partition("=")
        if not sign or not key:
            raise LaminaError(f"--meta {item!r}: write key=value")
        out[key.strip()] = cli_value(value)
    return out


def print_report(report: IngestReport) -> None:
    for err in report.errors:
        colour = "red" if err["kind"] == "failed" else "yellow"
        err_console.print(f"[{colour}]{err['kind']}[/] {err['source']}: {err['reason']}")
    rate = report.tokens_embedded / report.seconds if report.seconds else 0
    console.print(
        f"[bold]{report.collection}[/]: {report.ingested} ingested, {report.unchanged} unchanged, "
        f"{report.skipped} skipped, {report.failed} failed, {report.deleted} deleted"
        + (f", {report.low_coverage} with text lost" if report.low_coverage else "")
        + " · "
        f"{report.chunks_written} chunks written, {report.tokens_embedded:,} tokens embedded "
        f"in {report.seconds:.1f}s ({rate:,.0f} tok/s)"
    )


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt,
    mode: Annotated[SearchMode, typer.Option("--mode", "-m", help="dense, bm25 or hybrid (RRF).")] = "hybrid",
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Number of hits.")] = 10,
    source: Annotated[str | None, typer.Option("--source", help="Only sources matching this glob.")] = None,
    document: Annotated[
        str | None, typer.Option("--document", help="Only this document (id or source).")
    ] = None,
    filters: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search a collection: dense vectors, BM25, or both fused."""
    where = Where(source_glob=source, document=document, fields=parse_cli_filters(filters or []))
    hits = state.workspace.collection(collection).search(query, k, mode=mode, where=where)
    if as_json:
        print_json([h.to_dict() for h in hits])
        return
    if not hits:
        console.print("no hits")
        return
    print_hits(hits)


def collections(as_json: JsonOpt = False) -> None:
    """List collections with their document and chunk counts and embedding model."""
    infos = state.workspace.collections()
    if as_json:
        print_json([c.to_dict() for c in infos])
        return
    if not infos:
        console.print("no collections yet: lamina ingest PATH -c NAME")
        return
    table = Table("name", "documents", "chunks", "embedding model", "last run", "errors")
    for c in infos:
        run = c.last_run or {}
        errors = run.get("errors") or []
        table.add_row(
            c.name,
            str(c.documents),
            str(c.chunks),
            f"{c.embedding_model} ({c.dim}-d)",
            f"{run.get('status', '-')} {run.get('finished_at') or ''}",
            str(len(errors)),
        )
    console.print(table)


def documents(collection: CollectionOpt, as_json: JsonOpt = False) -> None:
    """List a collection's documents, and the errors of its last ingestion run."""
    coll = state.workspace.collection(collection)
    docs = coll.documents()
    info = coll.info
    if as_json:
        shown = [_shown(d) for d in docs]
        print_json({"collection": collection, "documents": shown, "last_run": info.last_run})
        return
    table = Table("source", "title", "format", "chunks", "tokens", "text kept", "readers", "updated")
    for d in docs:
        kept = f"{d.coverage:.0%}" if d.coverage is not None else ""
        readers = ", ".join(d.reader_groups)
        table.add_row(
            d.source,
            (d.title or "")[:50],
            d.format or "",
            str(d.chunks),
            str(d.tokens),
            kept,
            readers,
            d.updated_at,
        )
    console.print(table)
    for err in (info.last_run or {}).get("errors", []):
        console.print(f"[yellow]{err['kind']}[/] {err['source']}: {err['reason']}")


def _shown(d: DocumentRecord) -> dict[str, Any]:
    """A document as ``--json`` shows it: metadata and readers as JSON, not as their stored text."""
    fields = {k: v for k, v in d.to_dict().items() if k not in ("attrs", "readers", "given")}
    return fields | {"metadata": d.metadata, "readers": list(d.reader_groups)}


def drop(
    collection: Annotated[str, typer.Argument(help="Collection to delete.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Drop only this version (not the live one).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a collection (every version: vectors, documents, run history), or one version of it."""
    ws = state.workspace
    ws.registry.require_collection(collection)
    what = f"version {version} of {collection!r}" if version is not None else f"collection {collection!r}"
    if not yes:
        if not sys.stdin.isatty():
            err_console.print("refusing to drop without --yes when not interactive")
            raise typer.Exit(2)
        typer.confirm(f"Delete {what} and all its chunks?", abort=True)
    if version is not None:
        ws.drop_version(collection, version)
    else:
        ws.drop(collection)
    console.print(f"dropped {what}")
