"""The pure steps of an ingestion, shared by every engine: what runs where is the engine's business.

``Preparer`` (extract and chunk one source) and ``embed_counted`` carry no state of the run, so the
Ray engine ships them to worker processes as they are; the driver keeps everything that reads or
writes the registry and the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lamina.data.chunking import Chunker
from lamina.data.embed.base import Embedder, Vectors
from lamina.data.extract import extract
from lamina.data.metadata import Given
from lamina.data.ocr.reader import OcrOptions
from lamina.data.pdf import PageHook
from lamina.data.progress import FileState
from lamina.data.sources import SourceRef
from lamina.data.types import Chunk, Document, attrs_json, attrs_of
from lamina.errors import ExtractionFailed, IngestCancelled, UnsupportedDocument
from lamina.telemetry import INPUT_TOKENS, OPERATION, REQUEST_MODEL, tracer


@dataclass
class Loaded:
    """A source read into memory by the driver (it hashed these bytes), before extraction."""

    ref: SourceRef
    data: bytes
    name: str
    mimetype: str = ""
    url: str | None = None
    given: Given = field(default_factory=Given)

    @property
    def source(self) -> str:
        return self.ref.location


Work = Loaded | Document  # one changed source handed to an engine
Vector = np.ndarray | list[float]  # fresh from a model, or as a store returned it


@dataclass
class Prepared:
    """One source after extraction and chunking: its chunks, or why it has none."""

    source: str
    document: Document | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: ExtractionFailed | UnsupportedDocument | None = None


@dataclass(frozen=True)
class Preparer:
    """Extract (when given bytes) and chunk one source; every failure becomes a ``Prepared.error``.
    ``on_page`` hears each page of a PDF or image as it is extracted (the local engine's progress;
    it may raise ``IngestCancelled`` to stop a long scan between pages)."""

    chunker: Chunker
    max_bytes: int
    ocr: OcrOptions = field(default_factory=OcrOptions)

    def __call__(self, work: Work, on_page: PageHook | None = None) -> Prepared:
        source = work.source
        try:
            doc = work if isinstance(work, Document) else with_given(self._extract(work, on_page), work.given)
        except IngestCancelled:
            raise
        except (UnsupportedDocument, ExtractionFailed) as exc:
            return Prepared(source, error=exc)
        except Exception as exc:  # a converter bug must not kill the batch: report it as a failure
            return Prepared(source, error=ExtractionFailed(f"{type(exc).__name__}: {exc}"))
        with tracer.start_as_current_span("chunk", attributes={"lamina.source": source}) as span:
            chunks = self.chunker.chunk(doc)
            span.set_attribute("lamina.chunks", len(chunks))
        if not chunks:
            return Prepared(source, error=UnsupportedDocument("no retrievable text after cleaning"))
        return Prepared(source, doc, chunks)

    def _extract(self, item: Loaded, on_page: PageHook | None) -> Document:
        with tracer.start_as_current_span("extract", attributes={"lamina.source": item.source}) as span:
            doc = extract(
                item.data,
                source=item.source,
                name=item.name,
                mimetype=item.mimetype,
                max_bytes=self.max_bytes,
                url=item.url,
                ocr=self.ocr,
                on_page=on_page,
            )
            span.set_attribute("lamina.pages", len(doc.page_starts))
            return doc


def with_given(doc: Document, given: Given) -> Document:
    """An extracted document with what came with its bytes: metadata (over its front matter), readers."""
    attrs = given.attrs(attrs_of(doc.attrs))
    return replace(
        doc, attrs=attrs_json(attrs), readers=given.readers, given=given.digest(), origin=given.origin
    )


def embed_counted(embedder: Embedder, texts: Sequence[str]) -> tuple[Vectors, int]:
    """Vectors of ``texts`` and the tokens the model read (each text cut at its limit)."""
    model = embedder.name
    with tracer.start_as_current_span(
        f"embeddings {model}", attributes={OPERATION: "embeddings", REQUEST_MODEL: model}
    ) as span:
        vectors = embedder.embed(list(texts))
        tokens = sum(min(n, embedder.max_tokens) for n in embedder.count_tokens(list(texts)))
        span.set_attribute(INPUT_TOKENS, tokens)
        span.set_attribute("lamina.chunks", len(texts))
    return vectors, tokens


def to_embed(chunks: Sequence[Chunk], have: Mapping[str, object]) -> list[tuple[str, str]]:
    """(embed_hash, text) of each distinct text not in ``have``, in a stable order."""
    return sorted({c.embed_hash: c.indexed_text for c in chunks if c.embed_hash not in have}.items())


@dataclass
class Stages:
    """What an engine is handed for one run: the steps to run anywhere, and the driver's callbacks."""

    prepare: Preparer
    embedder: Embedder  # pickles as its recipe: a Ray actor loads the model once
    reuse: Callable[[list[Chunk]], dict[str, Vector]]  # vectors the stores already hold (driver)
    event: Callable[[str, FileState, str], None]  # a source's state (EXTRACTING, EMBEDDING), detail
    check: Callable[[], None]  # raises to stop the run (Ctrl-C seen while a converter swallowed it)


@dataclass
class Ready:
    """One batch, extracted, chunked and embedded, for the driver to write in one commit."""

    prepared: list[Prepared]
    vectors: dict[str, Vector]  # embed_hash -> vector, for every chunk of the batch
    embedded: int = 0  # distinct texts embedded afresh
    tokens: int = 0

    @property
    def documents(self) -> list[Prepared]:
        return [p for p in self.prepared if p.document is not None]
