"""The data layer's public face: a ``Workspace`` of named ``Collection``s you ingest into and search."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Literal

from lamina.config import Settings, load_settings
from lamina.data.embed import Embedder, make_embedder
from lamina.data.fusion import collapse_duplicates, reciprocal_rank_fusion
from lamina.data.ingest import Ingestion, IngestReport, Progress
from lamina.data.registry import CollectionInfo, DocumentRecord, Registry, check_name
from lamina.data.store.base import ChunkStore, Where
from lamina.data.store.lance import LanceStore
from lamina.data.types import Document, Hit
from lamina.errors import EmbeddingMismatch, LaminaError

SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")


class Collection:
    def __init__(self, info: CollectionInfo, workspace: Workspace) -> None:
        self.info = info
        self.name = info.name
        self.workspace = workspace
        self.settings = workspace.settings
        self.registry = workspace.registry
        self.embedder = workspace.embedder
        self.store: ChunkStore = LanceStore(workspace.settings.vectors_dir, info.name, info.dim)

    # load --------------------------------------------------------------------------------------
    def ingest(
        self,
        inputs: Sequence[str],
        *,
        sync: bool = False,
        allow_private: bool | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest files, folders (recursively) and URLs; ``sync`` drops documents gone from them."""
        return Ingestion(self, progress).run_sources(inputs, sync=sync, allow_private=allow_private)

    def ingest_documents(
        self, documents: Iterable[Document], *, total: int | None = None, progress: Progress | None = None
    ) -> IngestReport:
        """Ingest already-extracted documents (benchmarks, other loaders)."""
        return Ingestion(self, progress).run_documents(documents, total)

    def documents(self) -> list[DocumentRecord]:
        return list(self.registry.documents(self.name).values())

    def delete_documents(self, sources: Sequence[str]) -> None:
        """Remove documents' chunks, then their records (the registry never claims more than the store)."""
        self.store.delete_sources(sources)
        self.registry.delete_documents(self.name, sources)

    # retrieve ----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """Top ``k`` chunks for ``query``; hybrid fuses BM25 and dense rankings with RRF."""
        if mode not in SEARCH_MODES:
            raise LaminaError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        if not query.strip():
            raise LaminaError("the query is empty")
        k = k or self.settings.search.k
        n = max(candidates or self.settings.search.candidates, k)
        rankings: list[list[Hit]] = []
        names: list[str] = []
        if mode in ("dense", "hybrid"):
            rankings.append(self.store.dense(self.embedder.embed([query]), n, where))
            names.append("dense")
        if mode in ("bm25", "hybrid"):
            rankings.append(self.store.lexical(query, n, where))
            names.append("bm25")
        hits = (
            rankings[0]
            if len(rankings) == 1
            else reciprocal_rank_fusion(rankings, self.settings.search.rrf_k, names)
        )
        return collapse_duplicates(hits)[:k]


class Workspace:
    """Everything under one data directory: the registry, the vector store and the embedder."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None) -> None:
        self.settings = settings or load_settings()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._embedder = embedder

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.registry_url)

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or make_embedder(self.settings.embedding, self.settings.data_dir / "models")

    def collections(self) -> list[CollectionInfo]:
        return self.registry.list_collections()

    def collection(self, name: str, *, create: bool = False) -> Collection:
        """Open ``name``; with ``create`` make it (recording the embedder) if it does not exist."""
        check_name(name)
        info = self.registry.get_collection(name)
        if info is None:
            if not create:
                info = self.registry.require_collection(name)  # raises with the list of known ones
            else:
                info = self.registry.create_collection(name, self.embedder.name, self.embedder.dim)
        if info.embedding_model != self.embedder.name or info.dim != self.embedder.dim:
            raise EmbeddingMismatch(
                f"collection {name!r} was built with embedding model {info.embedding_model!r} "
                f"({info.dim}-d), "
                f"but the configured embedder is {self.embedder.name!r} ({self.embedder.dim}-d); "
                "vectors of different models cannot be mixed. Configure the original model "
                f"or rebuild: lamina drop {name} && lamina ingest ... -c {name}"
            )
        return Collection(info, self)

    def drop(self, name: str) -> None:
        info = self.registry.require_collection(name)
        LanceStore(self.settings.vectors_dir, info.name, info.dim).drop()
        self.registry.delete_collection(name)
