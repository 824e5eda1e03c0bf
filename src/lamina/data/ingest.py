"""The ingestion run: sources -> documents -> chunks -> vectors -> one atomic store commit per batch.

Idempotent and resumable by construction:
- a document is keyed by its source and the hash of its bytes; an unchanged one costs a read;
- a batch of documents replaces its old chunks in one store commit, then the registry records it;
- so a run killed at any point leaves the store with whole batches only, and the registry at most
  behind it: re-running the same command redoes the missing batches and nothing else.

This module is the driver: it lists and hashes sources and commits batches. An ``IngestEngine``
(``lamina.data.engine``) extracts, chunks and embeds them, in this process or on Ray.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import islice
from typing import Any

import numpy as np

from lamina.config import ChunkingSettings, FetchSettings, IngestSettings
from lamina.data.chunking import Chunker
from lamina.data.connectors.base import Entry
from lamina.data.embed.base import Embedder
from lamina.data.engine import IngestEngine, Loaded, LocalEngine, Prepared, Preparer, Ready, Stages, Work
from lamina.data.engine.stages import Vector
from lamina.data.fetch import fetch
from lamina.data.metadata import Given, modified_iso
from lamina.data.ocr.reader import OcrOptions
from lamina.data.progress import FileState, IngestReport, NoProgress, Progress, RunStatus
from lamina.data.registry import DocumentRecord, Registry
from lamina.data.sources import SourceRef, discover, is_url, scope_of
from lamina.data.store.base import ChunkStore
from lamina.data.types import Chunk, Document, sha256_hex
from lamina.errors import ExtractionFailed, FetchRefused, IngestCancelled, LaminaError, UnsupportedDocument
from lamina.telemetry import DATA_SOURCE, tracer

# 2: HTML keeps its main content whole (html_main), not readability's article
# 3: scanned pages and images read by OCR, PDF tables kept as tables (data/pdf.py, data/layout.py)
# 4: chunks carry their document's metadata and readers (filters and permissions in the store)
PIPELINE_VERSION = "4"


class _CtrlC:
    """Ctrl-C stops the run even when a converter swallows the ``KeyboardInterrupt`` it raised.

    markitdown's RSS check catches ``BaseException``: a Ctrl-C landing there went unseen and the
    run finished (exit 0). While the run is on, the main thread's SIGINT handler also notes the
    signal, and ``check`` (after each document) raises it again.
    """

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        if callable(self._previous):
            self._previous(signum, frame)
        elif self._previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Ingestion:
    """One run over one collection. Use ``Collection.ingest`` rather than this directly.

    It is handed what it works with (the collection's store, registry and embedder, and the
    settings sections it reads), never the ``Collection`` itself.
    """

    def __init__(
        self,
        name: str,
        *,
        store: ChunkStore,
        registry: Registry,
        label: str | None = None,
        donors: Sequence[ChunkStore] = (),
        embedder: Embedder,
        chunking: ChunkingSettings,
        ingest: IngestSettings,
        fetch: FetchSettings,
        progress: Progress | None = None,
        engine: IngestEngine | None = None,
        ocr_cache: str | None = None,
    ) -> None:
        self.name = name  # the registry's key of the build written
        self.store = store
        self.donors = donors  # stores of the same embedder whose vectors are copied, not recomputed
        self.registry = registry
        self.embedder = embedder
        self.engine = engine or LocalEngine()
        self.ingest_settings = ingest
        self.ocr = OcrOptions.of(ingest, ocr_cache)  # pages read once are kept there (resumes)
        self.fetch_settings = fetch
        self.progress = progress or NoProgress()
        self.pipeline = (
            f"{embedder.name}|{chunking.chunk_tokens}|{chunking.overlap_tokens}|{PIPELINE_VERSION}"
        )
        self.chunker = Chunker(
            embedder.count_tokens,
            chunk_tokens=min(chunking.chunk_tokens, embedder.max_tokens),
            overlap_tokens=chunking.overlap_tokens,
        )
        self.known = registry.documents(name)
        self.report = IngestReport(label or name, registry.start_run(name))
        self._started = time.perf_counter()

    # public entry points ---------------------------------------------------------------------
    def run_sources(
        self,
        inputs: Sequence[str],
        *,
        sync: bool = False,
        allow_private: bool | None = None,
        given: Given | None = None,
        given_each: Mapping[str, Given] | None = None,
    ) -> IngestReport:
        """``given``: metadata and readers for every input; ``given_each``: per source (a reindex
        carries each document's own)."""
        ingest = self.ingest_settings
        refs = list(discover(inputs, ingest.include, ingest.exclude))
        base = given or Given()

        def loaded() -> Iterator[Loaded | tuple[SourceRef, Exception]]:
            for ref in refs:
                try:
                    yield self._load(ref, allow_private, (given_each or {}).get(ref.location, base))
                except (FetchRefused, UnsupportedDocument, ExtractionFailed, OSError) as exc:
                    yield ref, exc

        def finish() -> None:
            if sync:
                self._sync(scope_of(inputs), {r.location for r in refs})

        return self._run(loaded(), len(refs), finish)

    def run_entries(
        self, entries: Sequence[Entry], read: Callable[[Entry], bytes], given: Given
    ) -> IngestReport:
        """A source's listing (``lamina.data.syncing``): each entry read with ``read`` and given what
        the source knows of it; at the end, what ``given.origin`` brought and no longer lists goes."""

        def loaded() -> Iterator[Loaded | tuple[SourceRef, Exception]]:
            for entry in entries:
                ref = SourceRef(entry.location, is_url(entry.location))
                try:
                    self._check_size(int(entry.attrs.get("size") or 0))
                    data = read(entry)
                except (OSError, LaminaError) as exc:
                    yield ref, exc
                    continue
                url = entry.location if ref.is_url else None
                item_given = replace(given, facts={**entry.attrs, **given.facts})
                yield Loaded(ref, data, entry.name, entry.mimetype, url, item_given)

        def finish() -> None:
            listed = {e.location for e in entries}
            gone = [s for s, d in self.known.items() if d.origin == given.origin and s not in listed]
            self._delete(gone)

        return self._run(loaded(), len(entries), finish)

    def run_documents(self, docs: Iterable[Document], total: int | None = None) -> IngestReport:
        return self._run(iter(docs), total, lambda: None)

    # the run ---------------------------------------------------------------------------------
    def _run(self, items: Iterator[Any], total: int | None, finish: Callable[[], None]) -> IngestReport:
        with tracer.start_as_current_span(
            f"ingest {self.name}",
            attributes={
                DATA_SOURCE: self.name,
                "lamina.ingest.run": self.report.run_id,
                "lamina.ingest.engine": self.engine.name,
            },
        ) as span:
            report = self._run_batches(items, total, finish)
            for key, value in report.stats().items():
                if isinstance(value, int | float):
                    span.set_attribute(f"lamina.ingest.{key}", value)
            span.set_attribute("lamina.ingest.status", report.status)
            return report

    def _run_batches(
        self, items: Iterator[Any], total: int | None, finish: Callable[[], None]
    ) -> IngestReport:
        self.progress.start(total)
        status: RunStatus = "failed"
        ctrl_c = _CtrlC()
        stages = Stages(
            prepare=Preparer(self.chunker, int(self.ingest_settings.max_file_mb * 1024 * 1024), self.ocr),
            embedder=self.embedder,
            reuse=self._reuse,
            event=self.progress.file,
            check=ctrl_c.check,
        )
        try:
            with ctrl_c:
                changed = _batched(self._changed(items, ctrl_c), self.ingest_settings.batch_documents)
                ready_batches = self.engine.run(changed, stages)
                try:
                    for ready in ready_batches:
                        self._commit(ready)
                finally:
                    close = getattr(ready_batches, "close", None)
                    if close is not None:
                        close()
            finish()
            self.store.optimize()
            status = "completed"
        except IngestCancelled:
            status = "cancelled"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.report.status = status
            self.report.seconds = round(time.perf_counter() - self._started, 3)
            self.registry.finish_run(self.report.run_id, status, self.report.stats(), self.report.errors)
        return self.report

    def _load(self, ref: SourceRef, allow_private: bool | None, given: Given) -> Loaded:
        if ref.is_url:
            fetched = fetch(ref.location, self.fetch_settings, allow_private=allow_private)
            facts: dict[str, Any] = {"url": fetched.final_url}
            return Loaded(
                ref,
                fetched.content,
                fetched.final_url,
                fetched.content_type,
                fetched.final_url,
                replace(given, facts={**facts, **given.facts}),
            )
        stat = ref.path.stat()
        self._check_size(stat.st_size)
        facts = {"modified": modified_iso(stat.st_mtime)}
        return Loaded(
            ref, ref.path.read_bytes(), ref.path.name, given=replace(given, facts={**facts, **given.facts})
        )

    def _check_size(self, size: int) -> None:
        """A file past ``ingest.max_file_mb`` is skipped before it is read."""
        most = self.ingest_settings.max_file_mb
        if size > int(most * 1024 * 1024):
            raise UnsupportedDocument(f"file is {size / 1e6:.1f} MB, over ingest.max_file_mb={most:g}")

    def _record_error(self, source: str, exc: Exception) -> None:
        state = FileState.SKIPPED if isinstance(exc, UnsupportedDocument) else FileState.FAILED
        reason = str(exc) if not isinstance(exc, OSError) else f"cannot read: {exc.strerror or exc}"
        if state is FileState.SKIPPED:
            self.report.skipped += 1
        else:
            self.report.failed += 1
        self.report.errors.append({"source": source, "kind": state.value, "reason": reason})
        self.progress.file(source, state, reason)

    def _check_coverage(self, doc: Document | None) -> None:
        """A page whose extraction lost text is indexed and reported, never silently."""
        limit = self.ingest_settings.min_coverage
        if doc is None or doc.coverage is None or doc.coverage >= limit:
            return
        self.report.low_coverage += 1
        reason = (
            f"extraction kept {doc.coverage:.0%} of the page's visible text "
            f"(under ingest.min_coverage = {limit:.0%}); indexed as extracted"
        )
        self.report.errors.append({"source": doc.source, "kind": "low coverage", "reason": reason})

    def _is_unchanged(self, source: str, content_hash: str, given: str) -> bool:
        known = self.known.get(source)
        return (
            known is not None
            and known.content_hash == content_hash
            and known.pipeline == self.pipeline
            and (known.given or "") == given
        )

    def _changed(self, items: Iterator[Any], ctrl_c: _CtrlC) -> Iterator[Work]:
        """The sources to (re)index; unchanged and unreadable ones are accounted for here."""
        for item in items:
            ctrl_c.check()
            if isinstance(item, tuple):
                self._record_error(item[0].location, item[1])
                self.progress.advance(documents=1)
                continue
            if isinstance(item, Document):
                content_hash, given = item.content_hash, item.given
            else:
                content_hash, given = sha256_hex(item.data), item.given.digest()
            if self._is_unchanged(item.source, content_hash, given):
                self.report.unchanged += 1
                self.progress.file(item.source, FileState.UNCHANGED)
                self.progress.advance(documents=1)
                continue
            yield item

    def _reuse(self, chunks: list[Chunk]) -> dict[str, Vector]:
        """Vectors this build or a donor already holds for identical texts: copied, not recomputed."""
        keys = list(dict.fromkeys(c.embed_hash for c in chunks))
        reuse: dict[str, Vector] = dict(self.store.reused_vectors(keys)) if keys else {}
        for donor in self.donors:
            if missing := [k for k in keys if k not in reuse]:
                reuse.update(donor.reused_vectors(missing))
        return reuse

    def _commit(self, ready: Ready) -> None:
        for p in ready.prepared:
            if p.error is not None:
                self._record_error(p.source, p.error)
                self.progress.advance(documents=1)
        if ready.embedded:
            self.report.chunks_embedded += ready.embedded
            self.report.tokens_embedded += ready.tokens
            self.progress.advance(chunks=ready.embedded, tokens=ready.tokens)
        written = ready.documents
        if not written:
            return
        all_chunks = [c for p in written for c in p.chunks]
        vectors = np.asarray([ready.vectors[c.embed_hash] for c in all_chunks], dtype=np.float32)
        started = time.perf_counter()
        with tracer.start_as_current_span("load", attributes={"lamina.chunks": len(all_chunks)}):
            self._load_batch(written, all_chunks, vectors)
        self.report.write_seconds = round(self.report.write_seconds + time.perf_counter() - started, 3)
        self.report.ingested += len(written)
        self.report.chunks_written += len(all_chunks)
        for p in written:
            self.progress.file(p.source, FileState.DONE, f"{len(p.chunks)} chunks")
            self._check_coverage(p.document)
        self.progress.advance(documents=len(written))

    def _load_batch(self, written: list[Prepared], all_chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.store.replace_documents([p.source for p in written], all_chunks, vectors)
        self.registry.upsert_documents(
            self.name,
            [
                DocumentRecord(
                    source=d.source,
                    doc_id=d.doc_id,
                    content_hash=d.content_hash,
                    pipeline=self.pipeline,
                    chunks=len(p.chunks),
                    tokens=sum(c.n_tokens for c in p.chunks),
                    title=d.title,
                    format=d.format,
                    size_bytes=d.size_bytes,
                    coverage=d.coverage,
                    attrs=d.attrs or None,
                    readers=json.dumps(list(d.readers)) if d.readers else None,
                    given=d.given or None,
                    origin=d.origin,
                )
                for p in written
                if (d := p.document) is not None
            ],
        )

    def _sync(self, scopes: list[str], seen: set[str]) -> None:
        def in_scope(source: str) -> bool:
            return any(source == s or (s.endswith("/") and source.startswith(s)) for s in scopes)

        self._delete([s for s in self.known if in_scope(s) and s not in seen])

    def _delete(self, gone: list[str]) -> None:
        """Chunks first, then records: the registry never claims more than the store holds."""
        if gone:
            self.store.delete_sources(gone)
            self.registry.delete_documents(self.name, gone)
            self.report.deleted += len(gone)
