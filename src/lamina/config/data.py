"""The data layer's sections: ``[ingest]``, ``[fetch]``, ``[chunking]``, ``[embedding]``, ``[search]``,
``[store]``."""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from lamina.config.base import Section

# Where an ingestion runs: the one list of engine names (``lamina.data.engine.make_engine`` builds each).
IngestEngineName = Literal["local", "ray"]
ENGINE_NAMES: tuple[IngestEngineName, ...] = get_args(IngestEngineName)
# OCR engines (``lamina.data.ocr.factory`` builds each) and when pages are read by OCR
OcrEngineName = Literal["tesseract", "rapidocr"]
OCR_ENGINES: tuple[OcrEngineName, ...] = get_args(OcrEngineName)
OcrMode = Literal["auto", "always", "never"]


class IngestSettings(Section):
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are refused.")
    include: list[str] = Field(
        default_factory=lambda: ["**/*"], description="Globs a folder's files must match."
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["**/.*", "**/.*/**", "**/__pycache__/**", "**/node_modules/**"],
        description="Globs that drop a folder's files (hidden files and folders by default).",
    )
    batch_documents: int = Field(64, ge=1, description="Documents written per atomic commit.")
    engine: IngestEngineName = Field(
        "local", description="Where extraction, chunking and embedding run: here, or on Ray (lamina[ray])."
    )
    ray_address: str | None = Field(
        None,
        description='Ray cluster to use ("auto", "ray://host:10001"); unset starts a local Ray instance.',
    )
    ray_actors: int = Field(0, ge=0, description="Ray engine: embedding actors (0 = one per node).")
    ray_docs_per_task: int = Field(8, ge=1, description="Ray engine: sources extracted by one task.")
    min_coverage: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A page whose extraction keeps less of its visible text than this is reported "
        "(and indexed all the same).",
    )
    document_timeout_s: float = Field(
        300.0, gt=0, description="Ray engine: a source still extracting after this long is failed."
    )
    ocr: OcrMode = Field(
        "auto",
        description="Read pages by OCR: auto (pages with no usable text layer, and image files), always "
        "(every page), never (a scan is skipped, saying so).",
    )
    ocr_engine: OcrEngineName = Field(
        "tesseract",
        description="tesseract (Debian's tesseract-ocr, installed by make) or rapidocr (lamina[rapidocr]).",
    )
    ocr_languages: list[str] = Field(
        default_factory=lambda: ["eng"],
        min_length=1,
        description='Tesseract language packs to read with (tesseract-ocr-LANG), e.g. ["eng", "deu"].',
    )
    ocr_page_timeout_s: float = Field(60.0, gt=0, description="A page OCR has not read in this long fails.")
    ocr_dpi: int = Field(300, ge=72, le=600, description="Resolution a scanned PDF page is rendered at.")
    ocr_max_megapixels: float = Field(
        50.0, gt=0, description="An image (or page) larger than this is refused (decompression bombs)."
    )

    @model_validator(mode="after")
    def _page_within_document(self) -> IngestSettings:
        if self.ocr_page_timeout_s > self.document_timeout_s:
            raise ValueError("ocr_page_timeout_s must not be longer than document_timeout_s")
        return self


class FetchSettings(Section):
    allow_private: bool = Field(
        False, description="Allow URLs on private, loopback and link-local addresses."
    )
    max_redirects: int = Field(5, ge=0, le=20)
    max_mb: float = Field(20.0, gt=0)
    timeout_s: float = Field(20.0, gt=0)


class ChunkingSettings(Section):
    chunk_tokens: int = Field(
        256, ge=32, le=8192, description="Token budget per chunk (embedder's tokenizer)."
    )
    overlap_tokens: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.chunk_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of chunk_tokens")
        return self


class EmbeddingSettings(Section):
    backend: Literal["onnx", "openai", "sentence-transformers"] = "onnx"
    model: str = Field(
        "all-MiniLM-L6-v2", description="Model name sent to a remote backend or loaded locally."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1"
    )
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    dimensions: int | None = Field(
        None, ge=1, description="Vector size of a remote model (asked once if unset)."
    )
    variant: Literal["auto", "int8", "fp32"] = Field(
        "auto",
        description=(
            "Arithmetic of the local ONNX model. 'auto': new collections get the default (int8), "
            "existing ones keep the variant they were built with; 'int8' or 'fp32' insists on one."
        ),
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="Texts per model call, sorted by length (the int8 ONNX variant runs one).",
    )
    threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = all cores.")
    timeout_s: float = Field(60.0, gt=0)
    concurrency: int = Field(
        4, ge=1, le=256, description="openai backend: requests in flight, to keep a GPU embedder busy."
    )
    max_retries: int = Field(
        3, ge=0, le=20, description="openai backend: retries of a failed request (backoff, 429 and 5xx)."
    )
    price_per_mtok: float = Field(0.0, ge=0, description="Price per million embedded tokens (0 = local).")


class RerankSettings(Section):
    """A rerank stage: a cross-encoder or LLM behind a ``/rerank`` API (vLLM, Jina, Cohere); off if unset."""

    base_url: str | None = Field(None, description="e.g. http://localhost:8000/v1 (vLLM serving a reranker)")
    model: str = Field("", description="Model name sent with each request.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    candidates: int = Field(30, ge=1, le=1000, description="Fused hits the reranker reorders.")
    timeout_s: float = Field(30.0, gt=0)


class SearchSettings(Section):
    k: int = Field(10, ge=1, le=1000)
    fusion: Literal["rrf", "convex"] = Field(
        "convex", description="Hybrid fusion: weighted sum of min-max normalized scores, or reciprocal ranks."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal Rank Fusion constant.")
    dense_weight: float = Field(0.6, ge=0, le=1, description="Weight of the dense score in convex fusion.")
    title_boost: float = Field(
        0.0, ge=0, description="BM25 over the title as a field of its own, added with this weight (0 = off)."
    )
    prf_docs: int = Field(
        0,
        ge=0,
        le=50,
        description="Dense pseudo-relevance feedback: top hits folded into the query (0 = off).",
    )
    prf_weight: float = Field(
        0.5, ge=0, description="Weight of the feedback centroid against the query (Rocchio)."
    )
    doc_chunks: int = Field(
        1,
        ge=1,
        le=20,
        description="Documents rank by the sum of their best N chunks' scores (1 = best chunk).",
    )
    candidates: int = Field(100, ge=1, description="Hits each mode contributes before fusion.")
    rerank: RerankSettings = Field(default_factory=RerankSettings)


class StoreSettings(Section):
    """Where chunks and their vectors live (``[store]``)."""

    backend: str = Field(
        "lancedb",
        description=(
            "Chunk store: 'lancedb' (embedded, on disk under data_dir), 'pgvector' (Postgres, needs "
            "lamina[postgres]), 'memory' (this process only: tests, throwaway runs) or a "
            "'module:Class' path to your own ChunkStore."
        ),
    )
    url: str | None = Field(
        None,
        description="pgvector: the Postgres to keep vectors in (default: database_url when it is Postgres).",
    )
    read_consistency_s: float | None = Field(
        0.0,
        ge=0,
        description=(
            "LanceDB: how stale a read may be of writes made by other processes (workers, replicas); "
            "0 checks on every read, unset never (one process only)."
        ),
    )


_EVERY = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def every_seconds(every: str | int | None) -> int | None:
    """``"15m"``, ``"2h"``, ``"1d"``, ``"90s"`` or seconds as a number; None: on demand only."""
    if every is None or every == "":
        return None
    if isinstance(every, int):
        return every
    match = _EVERY.match(every)
    if match is None:
        raise ValueError(f"every {every!r}: write a number with s, m, h or d (15m, 2h, 1d)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class SourceSettings(Section):
    """One ``[[sources]]`` entry: a source a collection stays in sync with (``lamina sources``)."""

    collection: str
    name: str
    spec: dict[str, Any] = Field(
        description='What to sync from: {kind = "folder", path = "..."}, or kind web, git, s3, webdav '
        "(docs/sources.md); credentials only as environment variable names or a secrets file."
    )
    every: str | int | None = Field(None, description="How often: 15m, 2h, 1d; unset: on demand only.")
    readers: list[str] = Field(default_factory=list, description="Groups that may read its documents.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Metadata for all its documents.")

    @model_validator(mode="after")
    def _every(self) -> SourceSettings:
        every_seconds(self.every)
        return self
