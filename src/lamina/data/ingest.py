"""The ingestion run: sources -> documents -> chunks -> vectors -> one atomic store commit per batch.

Idempotent and resumable by construction:
- a document is keyed by its source and the hash of its bytes; an unchanged one costs a read;
- a batch of documents replaces its old chunks in one store commit, then the registry records it;
- so a run killed at any point leaves the store with whole batches only, and the registry at most
  behind it: re-running the same command redoes the missing batches and nothing else.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import numpy as np

from lamina.config import ChunkingSettings, FetchSettings, IngestSettings
from lamina.data.chunking import Chunker
from lamina.data.embed.base import Embedder
from lamina.data.extract import extract
from lamina.data.fetch import fetch
from lamina.data.registry import DocumentRecord, Registry
from lamina.data.sources import SourceRef, discover, scope_of
from lamina.data.store.base import ChunkStore
from lamina.data.types import Chunk, Document, sha256_hex
from lamina.errors import ExtractionFailed, FetchRefused, IngestCancelled, UnsupportedDocument
from lamina.telemetry import DATA_SOURCE, INPUT_TOKENS, OPERATION, REQUEST_MODEL, tracer

PIPELINE_VERSION = "1"


class Progress(Protocol):
    """What a front end implements to show a run; the data layer never imports one."""

    def start(self, total: int | None) -> None: ...

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None: ...

    def file(self, source: str, state: str, detail: str = "") -> None:
        """One source's state: extracting, embedding, done, unchanged, skipped or failed (with why).

        It may raise ``IngestCancelled`` to stop the run; the batch under way is then not written.
        """
        ...


class _NoProgress:
    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        pass

    def file(self, source: str, state: str, detail: str = "") -> None:
        pass


@dataclass
class IngestReport:
    collection: str
    run_id: int
    status: str = "running"
    ingested: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    tokens_embedded: int = 0
    seconds: float = 0.0
    errors: list[dict[str, str]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.__dict__.items() if k not in ("errors", "collection", "run_id", "status")
        }

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Loaded:
    """A source read into memory with its content hash, before extraction."""

    ref: SourceRef
    data: bytes
    name: str
    mimetype: str = ""
    url: str | None = None


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
    ) -> None:
        self.name = name  # the registry's key of the build written
        self.store = store
        self.donors = donors  # stores of the same embedder whose vectors are copied, not recomputed
        self.registry = registry
        self.embedder = embedder
        self.ingest_settings = ingest
        self.fetch_settings = fetch
        self.progress = progress or _NoProgress()
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
        self, inputs: Sequence[str], *, sync: bool = False, allow_private: bool | None = None
    ) -> IngestReport:
        ingest = self.ingest_settings
        refs = list(discover(inputs, ingest.include, ingest.exclude))

        def loaded() -> Iterator[_Loaded | tuple[SourceRef, Exception]]:
            for ref in refs:
                try:
                    yield self._load(ref, allow_private)
                except (FetchRefused, UnsupportedDocument, ExtractionFailed, OSError) as exc:
                    yield ref, exc

        def finish() -> None:
            if sync:
                self._sync(scope_of(inputs), {r.location for r in refs})

        return self._run(loaded(), len(refs), finish)

    def run_documents(self, docs: Iterable[Document], total: int | None = None) -> IngestReport:
        return self._run(iter(docs), total, lambda: None)

    # the run ---------------------------------------------------------------------------------
    def _run(self, items: Iterator[Any], total: int | None, finish: Callable[[], None]) -> IngestReport:
        with tracer.start_as_current_span(
            f"ingest {self.name}",
            attributes={DATA_SOURCE: self.name, "lamina.ingest.run": self.report.run_id},
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
        status = "failed"
        ctrl_c = _CtrlC()
        try:
            # Preparing the next batch in a thread while this one embeds measured no faster (ONNX
            # Runtime keeps every core busy; README "Measured"), so batches run one after another.
            with ctrl_c:
                for batch in _batched(items, self.ingest_settings.batch_documents):
                    self._ingest_batch(*self._prepare(batch, ctrl_c))
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

    def _load(self, ref: SourceRef, allow_private: bool | None) -> _Loaded:
        if ref.is_url:
            fetched = fetch(ref.location, self.fetch_settings, allow_private=allow_private)
            return _Loaded(ref, fetched.content, fetched.final_url, fetched.content_type, fetched.final_url)
        limit = int(self.ingest_settings.max_file_mb * 1024 * 1024)
        size = ref.path.stat().st_size
        if size > limit:
            raise UnsupportedDocument(
                f"file is {size / 1e6:.1f} MB, over ingest.max_file_mb={self.ingest_settings.max_file_mb:g}"
            )
        return _Loaded(ref, ref.path.read_bytes(), ref.path.name)

    def _record_error(self, source: str, exc: Exception) -> None:
        kind = "skipped" if isinstance(exc, UnsupportedDocument) else "failed"
        reason = str(exc) if not isinstance(exc, OSError) else f"cannot read: {exc.strerror or exc}"
        if kind == "skipped":
            self.report.skipped += 1
        else:
            self.report.failed += 1
        self.report.errors.append({"source": source, "kind": kind, "reason": reason})
        self.progress.file(source, kind, reason)

    def _is_unchanged(self, source: str, content_hash: str) -> bool:
        known = self.known.get(source)
        return known is not None and known.content_hash == content_hash and known.pipeline == self.pipeline

    def _to_document(self, item: _Loaded | Document | tuple[SourceRef, Exception]) -> Document | None:
        """The document to (re)index, or None when it is unchanged or could not be read (reported)."""
        if isinstance(item, tuple):
            self._record_error(item[0].location, item[1])
            return None
        source = item.source if isinstance(item, Document) else item.ref.location
        content_hash = item.content_hash if isinstance(item, Document) else sha256_hex(item.data)
        if self._is_unchanged(source, content_hash):
            self.report.unchanged += 1
            self.progress.file(source, "unchanged")
            return None
        if isinstance(item, Document):
            return item
        self.progress.file(source, "extracting")
        try:
            with tracer.start_as_current_span("extract", attributes={"lamina.source": source}):
                return extract(
                    item.data,
                    source=item.ref.location,
                    name=item.name,
                    mimetype=item.mimetype,
                    max_bytes=int(self.ingest_settings.max_file_mb * 1024 * 1024),
                    url=item.url,
                )
        except (UnsupportedDocument, ExtractionFailed) as exc:
            self._record_error(item.ref.location, exc)
            return None
        except Exception as exc:  # a converter bug must not kill the batch: report it as a failure
            self._record_error(item.ref.location, ExtractionFailed(f"{type(exc).__name__}: {exc}"))
            return None

    def _prepare(self, batch: list[Any], ctrl_c: _CtrlC) -> tuple[list[Document], list[list[Chunk]]]:
        """Extract and chunk one batch."""
        docs: list[Document] = []
        chunks_by_doc: list[list[Chunk]] = []
        for item in batch:
            doc = self._to_document(item)
            ctrl_c.check()
            if doc is None:
                self.progress.advance(documents=1)
                continue
            with tracer.start_as_current_span("chunk", attributes={"lamina.source": doc.source}) as span:
                chunks = self.chunker.chunk(doc)
                span.set_attribute("lamina.chunks", len(chunks))
            if not chunks:
                self._record_error(doc.source, UnsupportedDocument("no retrievable text after cleaning"))
                self.progress.advance(documents=1)
                continue
            docs.append(doc)
            chunks_by_doc.append(chunks)
        return docs, chunks_by_doc

    def _ingest_batch(self, docs: list[Document], chunks_by_doc: list[list[Chunk]]) -> None:
        if not docs:
            return
        for doc in docs:
            self.progress.file(doc.source, "embedding")
        all_chunks = [c for chunks in chunks_by_doc for c in chunks]
        vectors = self._vectors(all_chunks)
        with tracer.start_as_current_span("load", attributes={"lamina.chunks": len(all_chunks)}):
            self._load_batch(docs, chunks_by_doc, all_chunks, vectors)
        self.report.ingested += len(docs)
        self.report.chunks_written += len(all_chunks)
        for doc, chunks in zip(docs, chunks_by_doc, strict=True):
            self.progress.file(doc.source, "done", f"{len(chunks)} chunks")
        self.progress.advance(documents=len(docs))

    def _load_batch(
        self,
        docs: list[Document],
        chunks_by_doc: list[list[Chunk]],
        all_chunks: list[Chunk],
        vectors: np.ndarray,
    ) -> None:
        self.store.replace_documents([d.source for d in docs], all_chunks, vectors)
        self.registry.upsert_documents(
            self.name,
            [
                DocumentRecord(
                    source=d.source,
                    doc_id=d.doc_id,
                    content_hash=d.content_hash,
                    pipeline=self.pipeline,
                    chunks=len(chunks),
                    tokens=sum(c.n_tokens for c in chunks),
                    title=d.title,
                    format=d.format,
                    size_bytes=d.size_bytes,
                )
                for d, chunks in zip(docs, chunks_by_doc, strict=True)
            ],
        )

    def _vectors(self, chunks: list[Chunk]) -> np.ndarray:
        """Embed each distinct text once; reuse vectors the store already has for identical text."""
        texts = [c.indexed_text for c in chunks]
        keys = [c.embed_hash for c in chunks]
        reuse = self.store.reused_vectors(keys)
        for donor in self.donors:
            if missing := [k for k in keys if k not in reuse]:
                reuse.update(donor.reused_vectors(missing))
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in reuse}.items())
        if todo:
            model = self.embedder.name
            with tracer.start_as_current_span(
                f"embeddings {model}", attributes={OPERATION: "embeddings", REQUEST_MODEL: model}
            ) as span:
                fresh = self.embedder.embed([t for _, t in todo])
                tokens = sum(
                    min(n, self.embedder.max_tokens) for n in self.embedder.count_tokens([t for _, t in todo])
                )
                span.set_attribute(INPUT_TOKENS, tokens)
                span.set_attribute("lamina.chunks", len(todo))
            reuse.update({k: fresh[i] for i, (k, _) in enumerate(todo)})
            self.report.chunks_embedded += len(todo)
            self.report.tokens_embedded += tokens
            self.progress.advance(chunks=len(todo), tokens=tokens)
        return np.asarray([reuse[k] for k in keys], dtype=np.float32)

    def _sync(self, scopes: list[str], seen: set[str]) -> None:
        def in_scope(source: str) -> bool:
            return any(source == s or (s.endswith("/") and source.startswith(s)) for s in scopes)

        gone = [s for s in self.known if in_scope(s) and s not in seen]
        if gone:
            self.store.delete_sources(gone)
            self.registry.delete_documents(self.name, gone)
            self.report.deleted += len(gone)
