"""The records that flow through the data layer: document -> chunks -> hits."""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def location(page: int | None, headings: list[str] | tuple[str, ...]) -> str:
    """Where in its document a chunk sits, for people: its page if known, else its heading path."""
    return f"p. {page}" if page else " > ".join(headings)


def attrs_json(attrs: dict[str, Any]) -> str:
    """Metadata as stored: compact, keys sorted, non-ASCII kept (a store compares the JSON text)."""
    return json.dumps(attrs, ensure_ascii=False, sort_keys=True, separators=(",", ":")) if attrs else ""


def attrs_of(text: str) -> dict[str, Any]:
    return dict(json.loads(text)) if text else {}


def doc_id_for(source: str) -> str:
    """A document's identity is its source: the same path or URL is the same document."""
    return sha256_hex(source)[:16]


@dataclass(frozen=True)
class Document:
    """Extracted text of one source, before chunking.

    ``text`` is cleaned Markdown; ``page_starts[i]`` is the character offset where page ``i + 1``
    begins (PDFs), so any offset can be mapped back to a page for citations.
    """

    source: str
    text: str
    content_hash: str
    title: str | None = None
    format: str = ""
    page_starts: tuple[int, ...] = ()
    size_bytes: int = 0
    meta: str = ""  # JSON object carried to every chunk (e.g. a few-shot example's output)
    coverage: float | None = None  # share of the page's visible text kept (HTML; None: not measured)
    attrs: str = ""  # JSON object: the document's metadata, filterable (``Where.fields``)
    readers: tuple[str, ...] = ()  # groups that may read it; none: everyone in the tenant
    given: str = ""  # digest of what came with the bytes (``lamina.data.metadata.Given``)
    origin: str | None = None  # the source that brought it

    @property
    def doc_id(self) -> str:
        return doc_id_for(self.source)

    def page_at(self, offset: int) -> int | None:
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: a span of a document's text with where it came from."""

    doc_id: str
    source: str
    title: str
    headings: tuple[str, ...]
    page: int | None
    start: int
    end: int
    text: str
    n_tokens: int
    ordinal: int
    meta: str = ""
    attrs: str = ""  # the document's metadata (JSON object), on every chunk so filters run in the store
    readers: tuple[str, ...] = ()

    @property
    def text_hash(self) -> str:
        return sha256_hex(self.text)[:16]

    @property
    def embed_hash(self) -> str:
        return sha256_hex(self.indexed_text)[:16]

    @property
    def chunk_id(self) -> str:
        return sha256_hex(f"{self.source}\0{self.ordinal}\0{self.text_hash}")[:24]

    @property
    def context(self) -> str:
        """Title and heading path: prepended for embedding and BM25 so a chunk keeps its topic."""
        parts = [self.title, *self.headings] if self.title else list(self.headings)
        seen: list[str] = []
        for part in parts:
            if part and part not in seen:
                seen.append(part)
        return " > ".join(seen)

    @property
    def indexed_text(self) -> str:
        return f"{self.context}\n\n{self.text}" if self.context else self.text


@dataclass
class Hit:
    """One search result; ``text`` is the whole chunk, ``snippet`` a short preview of it."""

    chunk_id: str
    doc_id: str
    source: str
    title: str
    headings: list[str]
    page: int | None
    text: str
    score: float
    start: int = 0
    end: int = 0
    text_hash: str = ""
    meta: str = ""
    attrs: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return location(self.page, self.headings)

    @property
    def ocr(self) -> bool:
        """Whether this chunk's text was read by OCR (its page is in the document's ``ocr_pages``)."""
        if '"ocr_pages"' not in self.meta:
            return False
        pages = json.loads(self.meta).get("ocr_pages") or []
        return self.page in pages if self.page is not None else bool(pages)

    @property
    def metadata(self) -> dict[str, Any]:
        return attrs_of(self.attrs)

    @property
    def snippet(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= 240 else flat[:237].rsplit(" ", 1)[0] + "..."

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "page": self.page,
            "headings": self.headings,
            "score": self.score,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "ocr": self.ocr,
            "metadata": self.metadata,
        }
