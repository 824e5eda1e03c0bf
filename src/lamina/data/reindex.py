"""``lamina reindex``: build a new version of a collection beside the live one, from the originals.

The live version keeps answering while the new one is built: the build writes only its own store
and its own registry rows. It is an ordinary ingestion run into the new build, so it is
incremental and kill-safe: a stopped reindex with the same options resumes the unfinished
version. Vectors are copied from the live version instead of recomputed when the embedder is the
same (same embedding input, same model: the same vector); with another embedder every chunk is
embedded afresh, so vectors of two models never meet in one store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lamina.data.collection import Collection, Workspace
from lamina.data.embed.base import Embedder
from lamina.data.metadata import VOLATILE, Given
from lamina.data.progress import IngestReport, Progress
from lamina.data.registry import DocumentRecord
from lamina.data.types import Document
from lamina.data.versions import BuildSpec, VersionInfo


@dataclass(frozen=True)
class ReindexOptions:
    """What changes in the new version; ``None`` keeps the live version's setting."""

    store: str | None = None
    embedding_variant: str | None = None
    chunk_tokens: int | None = None
    overlap_tokens: int | None = None


@dataclass
class ReindexResult:
    version: VersionInfo
    report: IngestReport
    resumed: bool
    switched: bool = False

    @property
    def vectors_copied(self) -> int:
        return max(0, self.report.chunks_written - self.report.chunks_embedded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(),
            "resumed": self.resumed,
            "switched": self.switched,
            "vectors_copied": self.vectors_copied,
            "report": self.report.to_dict(),
        }


def build_spec(ws: Workspace, live: Collection, options: ReindexOptions) -> tuple[BuildSpec, Embedder]:
    """The new version's settings and the embedder it is built with."""
    embedder = ws.embedders.variant(options.embedding_variant) if options.embedding_variant else live.embedder
    chunking = live.chunking
    spec = BuildSpec(
        store=options.store or live.info.store or ws.settings.store.backend,
        embedding_model=embedder.name,
        dim=embedder.dim,
        chunk_tokens=options.chunk_tokens or chunking.chunk_tokens,
        overlap_tokens=chunking.overlap_tokens if options.overlap_tokens is None else options.overlap_tokens,
    )
    return spec, embedder


def reindex(
    ws: Workspace,
    name: str,
    options: ReindexOptions | None = None,
    *,
    documents: Iterable[Document] | None = None,
    total: int | None = None,
    progress: Progress | None = None,
    switch: bool = False,
) -> ReindexResult:
    """Build (or resume) a version of ``name`` with ``options``; ``switch`` makes it live when done.

    ``documents`` stands in for the originals when they are not files or URLs (a BEIR corpus).
    """
    live = ws.collection(name)
    spec, embedder = build_spec(ws, live, options or ReindexOptions())
    building = ws.versions.building(name, spec)
    version = building or ws.versions.create(name, spec)
    target = Collection(ws.build_info(name, version), ws, embedder)
    if embedder.name == live.embedder.name:
        target.donors = [live.store]
    if documents is not None:
        report = target.ingest_documents(documents, total=total, progress=progress)
    else:
        report = _from_originals(live, target, progress)
    result = ReindexResult(version, report, resumed=building is not None)
    if report.status == "completed":
        ws.versions.mark_ready(name, version.number)
        if switch:
            ws.versions.switch(name, version.number)
            result.switched = True
    result.version = ws.versions.get(name, version.number)
    return result


def _from_originals(live: Collection, target: Collection, progress: Progress | None) -> IngestReport:
    """Re-read the live version's sources into the target, then catch up with what changed meanwhile."""
    records = live.documents()
    sources = [d.source for d in records]
    given = {d.source: _given(d) for d in records}  # each document keeps its metadata and readers
    report = target.ingest(sources, progress=progress, given_each=given)
    if report.status != "completed":
        return report
    now_live = {d.source: d.content_hash for d in live.documents()}
    built = {d.source: d.content_hash for d in target.documents()}
    failed = {e["source"] for e in report.errors}
    gone = [s for s in built if s not in now_live]
    if gone:
        target.delete_documents(gone)
        report.deleted += len(gone)
    changed = [s for s, h in now_live.items() if built.get(s) != h and s not in failed]
    if changed:  # ingested into the live version while this build ran
        again = target.ingest(changed, given_each={d.source: _given(d) for d in live.documents()})
        for key in ("ingested", "chunks_written", "chunks_embedded", "tokens_embedded", "failed"):
            setattr(report, key, getattr(report, key) + getattr(again, key))
        report.errors += again.errors
        report.status = again.status
    return report


def _given(record: DocumentRecord) -> Given:
    facts = {k: v for k, v in record.metadata.items() if k in VOLATILE}
    kept = {k: v for k, v in record.metadata.items() if k not in VOLATILE}
    return Given(facts=facts, metadata=kept, readers=record.reader_groups, origin=record.origin)
