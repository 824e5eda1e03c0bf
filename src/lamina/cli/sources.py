"""``lamina sources``: the sources a collection stays in sync with (add, list, sync, remove)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from lamina.cli.context import state
from lamina.cli.data import CollectionOpt, JsonOpt, cli_metadata, print_report
from lamina.cli.output import IngestProgress, console, err_console, print_json
from lamina.config.data import every_seconds
from lamina.data.connectors import parse_spec
from lamina.data.filters import check_groups, check_metadata
from lamina.data.registry import check_name
from lamina.data.source_store import SourceRecord, SourceStore
from lamina.data.syncing import SyncResult, configured, remove_source, sync_due, sync_source
from lamina.errors import LaminaError
from lamina.serve.process import process_name

sources_app = typer.Typer(
    help="Sources a collection stays in sync with: a folder, a web site, a git repository, an S3 "
    "bucket, a WebDAV folder (docs/sources.md). Also \\[\\[sources]] in lamina.toml.",
    no_args_is_help=True,
)
LIST_FIELDS = {"include", "exclude", "paths"}  # comma-separated on the command line


def _store() -> SourceStore:
    configured(state.workspace)  # lamina.toml's [[sources]] first, so they list and sync too
    return SourceStore(state.workspace.registry.engine)


def parse_settings(kind: str, settings: list[str]) -> dict[str, Any]:
    """``key=value`` words into a spec (``paths=docs,guides`` for the list fields)."""
    spec: dict[str, Any] = {"kind": kind}
    for word in settings:
        key, sign, value = word.partition("=")
        if not sign or not key:
            raise LaminaError(f"{word!r}: write setting=value (e.g. url=https://example.com/)")
        spec[key] = [v for v in value.split(",") if v] if key in LIST_FIELDS else value
    return spec


@sources_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the source, unique in its collection.")],
    kind: Annotated[str, typer.Argument(help="folder, web, git, s3 or webdav.")],
    collection: CollectionOpt,
    settings: Annotated[
        list[str] | None,
        typer.Argument(
            help="The kind's settings as key=value: path=/srv/docs · url=https://… max_pages=200 · "
            "url=… branch=main paths=docs · bucket=… prefix=… endpoint_url=… access_key_env=… · "
            "url=… username_env=… password_env=…"
        ),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Sync on a schedule: 15m, 2h, 1d (default: on demand).")
    ] = None,
    readers: Annotated[
        list[str] | None, typer.Option("--reader", help="A group that may read its documents (repeatable).")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Metadata for all its documents, key=value.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a source (or change the one of that name); `lamina sources sync` brings its documents."""
    check_name(collection)
    try:
        every_s = every_seconds(every)
    except ValueError as exc:
        raise LaminaError(str(exc)) from None
    record = _store().put(
        collection,
        name,
        parse_spec(parse_settings(kind, settings or [])),
        every_s=every_s,
        readers=check_groups(readers),
        metadata=check_metadata(cli_metadata(meta or [])),
    )
    if as_json:
        print_json(record.to_dict())
        return
    when = f"every {every}" if every else "on demand: lamina sources sync " + name
    console.print(f"source [bold]{name}[/] of {collection}: {record.spec.kind}, {when}")


@sources_app.command("list")
def list_sources(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Only this collection's sources.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sources with their last sync (status, changes, errors) and the next one."""
    records = _store().list(collection)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        console.print("no sources: lamina sources add NAME KIND key=value … -c COLLECTION")
        return
    table = Table("collection", "name", "kind", "every", "last sync", "status", "changes", "next sync")
    for r in records:
        table.add_row(
            r.collection,
            r.name,
            r.spec.kind,
            f"{r.every_s}s" if r.every_s else "on demand",
            r.last_sync_at or "never",
            "syncing" if r.syncing else (r.last_status or ""),
            _changes(r),
            r.to_dict()["next_sync_at"] or "",
        )
    console.print(table)
    for r in records:
        if r.last_error:
            err_console.print(f"[red]{r.collection}/{r.name}[/]: {r.last_error}", highlight=False)


def _changes(record: SourceRecord) -> str:
    report = record.last_report or {}
    if not report:
        return ""
    return f"+{report.get('ingested', 0)} ={report.get('unchanged', 0)} -{report.get('deleted', 0)}" + (
        f" !{report['failed']}" if report.get("failed") else ""
    )


@sources_app.command("sync")
def sync(
    name: Annotated[str | None, typer.Argument(help="The source (default: every source of -c).")] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="The collection whose sources to sync.")
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Every scheduled source that is due, any collection.")
    ] = False,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Let web/WebDAV/S3/git sources reach private addresses.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sync now, in this process, under the source's lease (one another worker syncs is skipped as
    busy). Incremental; what disappeared from the source is deleted."""
    store = _store()
    owner = process_name()
    results: list[SyncResult] = []
    if due:
        results = sync_due([state.workspace], owner, state.settings.serve.source_lease_s)
    else:
        if collection is None:
            raise LaminaError("name the collection (-c NAME), or sync every due source: --due")
        records = [store.get(collection, name)] if name else store.list(collection)
        if not records:
            raise LaminaError(f"collection {collection!r} has no sources (see: lamina sources add)")
        for record in records:
            enabled = not as_json and err_console.is_terminal
            with IngestProgress(f"sync {record.name} → {record.collection}", enabled=enabled) as bar:
                results.append(
                    sync_source(
                        state.workspace,
                        record,
                        owner=owner,
                        lease_s=state.settings.serve.source_lease_s,
                        progress=bar,
                        allow_private=allow_private,
                    )
                )
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            if r.report is not None:
                print_report(r.report)
            colour = "green" if r.status == "completed" else "yellow" if r.status == "busy" else "red"
            detail = f": {r.error}" if r.error else ""
            console.print(
                f"[{colour}]{r.source}: {r.status}[/] ({r.listed} listed, {r.seconds:.1f}s){detail}"
            )
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@sources_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The source.")],
    collection: CollectionOpt,
    keep_documents: Annotated[
        bool, typer.Option("--keep-documents", help="Keep the documents it brought.")
    ] = False,
) -> None:
    """Forget a source and delete the documents it brought (unless --keep-documents)."""
    _store()
    deleted = remove_source(state.workspace, collection, name, keep_documents=keep_documents)
    console.print(f"source {name} removed; {deleted} document(s) deleted")
