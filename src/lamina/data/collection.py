"""The data layer's public face: a ``Workspace`` of named ``Collection``s you ingest into and search."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

from lamina.config import ChunkingSettings, SearchSettings, Settings, load_settings
from lamina.data.concurrent import Leg
from lamina.data.connectors.base import Entry
from lamina.data.embed import Embedder, Embedders
from lamina.data.engine import IngestEngine, make_engine
from lamina.data.filters import check_groups, check_metadata
from lamina.data.fusion import (
    collapse_duplicates,
    convex_fusion,
    rank_documents,
    reciprocal_rank_fusion,
    rocchio,
)
from lamina.data.ingest import Ingestion
from lamina.data.metadata import Given
from lamina.data.progress import IngestReport, Progress
from lamina.data.registry import CollectionInfo, DocumentRecord, Registry, check_name
from lamina.data.rerank import Reranker, make_reranker, rerank
from lamina.data.source_store import SourceStore
from lamina.data.store import ChunkStore, Where, make_store
from lamina.data.types import Document, Hit
from lamina.data.versions import VersionInfo, Versions
from lamina.errors import EmbeddingMismatch, LaminaError

SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")


class Collection:
    def __init__(self, info: CollectionInfo, workspace: Workspace, embedder: Embedder) -> None:
        self.info = info
        self.name = info.name
        self.key = info.key  # the build this object reads and writes, fixed for its lifetime
        self.workspace = workspace
        self.settings = workspace.settings
        self.registry = workspace.registry
        self.embedder = embedder
        self.store: ChunkStore = make_store(workspace.settings, info.key, info.dim, info.store)
        self.donors: list[ChunkStore] = []  # other builds whose vectors this one may copy

    @property
    def chunking(self) -> ChunkingSettings:
        """The chunking this build was made with (the configured one for builds from before versions)."""
        info = self.info
        pairs = (("chunk_tokens", info.chunk_tokens), ("overlap_tokens", info.overlap_tokens))
        update = {k: v for k, v in pairs if v is not None}
        return self.settings.chunking.model_copy(update=update)

    def _ingestion(self, progress: Progress | None, engine: IngestEngine | None = None) -> Ingestion:
        return Ingestion(
            self.key,
            label=self.name,
            store=self.store,
            donors=self.donors,
            registry=self.registry,
            embedder=self.embedder,
            chunking=self.chunking,
            ingest=self.settings.ingest,
            fetch=self.settings.fetch,
            progress=progress,
            engine=engine or make_engine(self.settings.ingest),
            ocr_cache=str(self.settings.data_dir / "ocr-cache"),
        )

    # load --------------------------------------------------------------------------------------
    def ingest(
        self,
        inputs: Sequence[str],
        *,
        sync: bool = False,
        allow_private: bool | None = None,
        progress: Progress | None = None,
        metadata: Mapping[str, Any] | None = None,
        readers: Sequence[str] | None = None,
        given_each: Mapping[str, Given] | None = None,
    ) -> IngestReport:
        """Ingest files, folders (recursively) and URLs; ``sync`` drops documents gone from them.

        ``metadata`` is given to every document (over what the source and its front matter say),
        ``readers`` names the groups that may read them (none: everyone in the tenant).
        """
        given = Given(metadata=check_metadata(metadata), readers=check_groups(readers))
        return self._ingestion(progress).run_sources(
            inputs, sync=sync, allow_private=allow_private, given=given, given_each=given_each
        )

    def ingest_entries(
        self,
        entries: Sequence[Entry],
        read: Callable[[Entry], bytes],
        given: Given,
        *,
        progress: Progress | None = None,
    ) -> IngestReport:
        """A source's whole listing (``lamina.data.syncing``); what ``given.origin`` brought before
        and no longer lists is deleted at the end."""
        return self._ingestion(progress).run_entries(entries, read, given)

    def ingest_documents(
        self,
        documents: Iterable[Document],
        *,
        total: int | None = None,
        progress: Progress | None = None,
        engine: IngestEngine | None = None,
    ) -> IngestReport:
        """Ingest already-extracted documents (benchmarks, other loaders); ``engine`` overrides
        ``ingest.engine`` with an engine the caller keeps (to read what it measured)."""
        return self._ingestion(progress, engine).run_documents(documents, total)

    def documents(self) -> list[DocumentRecord]:
        return list(self.registry.documents(self.key).values())

    def delete_documents(self, sources: Sequence[str]) -> None:
        """Remove documents' chunks, then their records (the registry never claims more than the store)."""
        self.store.delete_sources(sources)
        self.registry.delete_documents(self.key, sources)

    # retrieve ----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        candidates: int | None = None,
        options: SearchSettings | None = None,
    ) -> list[Hit]:
        """Top ``k`` chunks for ``query``; ``options`` (default: ``settings.search``) pick the levers."""
        opts = options or self.settings.search
        if mode not in SEARCH_MODES:
            raise LaminaError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        if not query.strip():
            raise LaminaError("the query is empty")
        k = k or opts.k
        n = max(candidates or opts.candidates, k)
        rankings: list[list[Hit]] = []
        names: list[str] = []

        def lexical() -> list[Hit]:
            return self.store.lexical(query, n, where, title_boost=opts.title_boost)

        # in hybrid mode BM25 runs beside the query's embedding and the dense leg
        bm25 = Leg(lexical).result if mode == "hybrid" else lexical
        if mode in ("dense", "hybrid"):
            rankings.append(self._dense(query, n, where, opts))
            names.append("dense")
        if mode in ("bm25", "hybrid"):
            rankings.append(bm25())
            names.append("bm25")
        if len(rankings) == 1:
            hits = rankings[0]
        elif opts.fusion == "convex":
            hits = convex_fusion(rankings, [opts.dense_weight, 1 - opts.dense_weight], names)
        else:
            hits = reciprocal_rank_fusion(rankings, opts.rrf_k, names)
        hits = collapse_duplicates(hits)
        same = opts.rerank == self.settings.search.rerank
        reranker = self.workspace.reranker if same else make_reranker(opts.rerank)
        if reranker is not None:
            hits = rerank(reranker, query, hits, opts.rerank.candidates)
        return hits[:k]

    def _dense(self, query: str, n: int, where: Where | None, opts: SearchSettings) -> list[Hit]:
        vector = self.embedder.embed([query])
        hits = self.store.dense(vector, n, where)
        if opts.prf_docs and hits:
            feedback = self.store.vectors([h.chunk_id for h in hits[: opts.prf_docs]])
            hits = self.store.dense(rocchio(vector, feedback, opts.prf_weight), n, where)
        return hits

    def search_documents(
        self,
        query: str,
        k: int,
        *,
        mode: SearchMode = "hybrid",
        candidates: int | None = None,
        options: SearchSettings | None = None,
    ) -> list[Hit]:
        """Top ``k`` documents, each as its best chunk, scored by ``search.doc_chunks`` of its chunks."""
        opts = options or self.settings.search
        n = max(candidates or opts.candidates, k)
        hits = self.search(query, n, mode=mode, candidates=n, options=options)
        return rank_documents(hits, opts.doc_chunks)[:k]


class Workspace:
    """Everything under one data directory: the registry, the vector store and the embedder."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        embedders: Embedders | None = None,
    ) -> None:
        """``embedder`` pins one embedder; ``embedders`` shares loaded models between workspaces."""
        self.settings = settings or load_settings()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.embedders = embedders or Embedders(
            self.settings.embedding, self.settings.data_dir / "models", default=embedder
        )

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.registry_url)

    @property
    def embedder(self) -> Embedder:
        """The embedder new collections are built with."""
        return self.embedders.default

    @cached_property
    def reranker(self) -> Reranker | None:
        return make_reranker(self.settings.search.rerank)

    def collections(self) -> list[CollectionInfo]:
        return self.registry.list_collections()

    @cached_property
    def versions(self) -> Versions:
        chunking = self.settings.chunking
        return Versions(
            self.registry, self.settings.store.backend, (chunking.chunk_tokens, chunking.overlap_tokens)
        )

    def collection(self, name: str, *, create: bool = False, version: int | None = None) -> Collection:
        """Open ``name`` at its live version (or ``version``); ``create`` makes it if it does not exist.

        A new collection records the embedder and the store it is built with.
        """
        check_name(name)
        info = self.registry.get_collection(name)
        if info is None:
            if not create:
                info = self.registry.require_collection(name)  # raises with the list of known ones
            else:
                info = self.registry.create_collection(
                    name, self.embedder.name, self.embedder.dim, store=self.settings.store.backend
                )
        if version is not None and version != info.version:
            info = self.build_info(name, self.versions.get(name, version))
        return Collection(info, self, self.embedder_for(info))

    def build_info(self, name: str, version: VersionInfo) -> CollectionInfo:
        """``name`` as one of its builds holds it (what ``collection(version=...)`` opens)."""
        spec = version.spec
        return CollectionInfo(
            name=name,
            embedding_model=spec.embedding_model,
            dim=spec.dim,
            created_at=version.created_at,
            key=version.key,
            version=version.number,
            store=spec.store,
            chunk_tokens=spec.chunk_tokens,
            overlap_tokens=spec.overlap_tokens,
            documents=version.documents,
            chunks=version.chunks,
        )

    def embedder_for(self, info: CollectionInfo) -> Embedder:
        """The embedder whose vectors this build holds; refused when this configuration has none."""
        embedder = self.embedders.for_model(info.embedding_model)
        if embedder is None or info.dim != embedder.dim:
            raise EmbeddingMismatch(
                f"collection {info.name!r} was built with embedding model {info.embedding_model!r} "
                f"({info.dim}-d), "
                f"but the configured embedder is {self.embedder.name!r} ({self.embedder.dim}-d); "
                "vectors of different models or variants cannot be mixed. Configure the original one "
                f'(for a local variant: embedding.variant = "auto") '
                f"or build a version with this one: lamina reindex -c {info.name}"
            )
        return embedder

    def drop(self, name: str) -> None:
        """Drop a collection with every version's store."""
        self.registry.require_collection(name)
        for version in self.versions.list(name):
            make_store(self.settings, version.key, version.spec.dim, version.spec.store).drop()
        SourceStore(self.registry.engine).forget_collection(name)
        self.registry.delete_collection(name)

    def drop_version(self, name: str, number: int) -> VersionInfo:
        """Drop one version that is not live, records first (a reader never finds a half-dropped build)."""
        version = self.versions.forget(name, number)
        make_store(self.settings, version.key, version.spec.dim, version.spec.store).drop()
        return version
