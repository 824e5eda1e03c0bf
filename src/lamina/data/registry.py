"""Registry of collections, documents and ingestion runs (SQLite by default, any SQLAlchemy URL).

The registry is written *after* the store commits, so it never claims more than the store has:
after a crash it can only lag behind, and a re-run redoes exactly the lagging documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lamina.data.registry_schema import collections, documents, migrate, open_database, runs
from lamina.errors import CollectionNotFound, LaminaError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


VERSION_SUFFIX = re.compile(r"--v\d+$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LaminaError(
            f"invalid collection name {name!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    if VERSION_SUFFIX.search(name):
        raise LaminaError(f"invalid collection name {name!r}: names ending in --vN are kept for versions")
    return name


def version_key(name: str, number: int) -> str:
    """Where version ``number`` of collection ``name`` keeps its rows, chunks and runs."""
    return name if number == 1 else f"{name}--v{number}"


@dataclass
class CollectionInfo:
    """A collection as its live version (``version``, kept under ``key``) shows it."""

    name: str
    embedding_model: str
    dim: int
    created_at: str
    key: str = ""
    version: int = 1
    store: str | None = None  # None: a collection from before versions, on the configured store
    chunk_tokens: int | None = None  # None: the configured chunking
    overlap_tokens: int | None = None
    documents: int = 0
    chunks: int = 0
    last_run: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.key = self.key or version_key(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "documents": self.documents,
            "chunks": self.chunks,
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "version": self.version,
            "store": self.store,
            "created_at": self.created_at,
            "last_run": self.last_run,
        }


@dataclass
class DocumentRecord:
    source: str
    doc_id: str
    content_hash: str
    pipeline: str
    chunks: int
    tokens: int
    title: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    coverage: float | None = None  # share of the page's visible text extraction kept (HTML)
    updated_at: str = field(default_factory=now)
    attrs: str | None = None  # metadata, JSON object text
    readers: str | None = None  # JSON list of groups; NULL or [] = the whole tenant
    given: str | None = None  # digest of the metadata and readers given with the bytes
    origin: str | None = None  # the source (``lamina sources``) that brought it

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.attrs) if self.attrs else {}

    @property
    def reader_groups(self) -> tuple[str, ...]:
        return tuple(json.loads(self.readers)) if self.readers else ()

    def readable_by(self, groups: frozenset[str] | None) -> bool:
        """Whether a reader of ``groups`` (None: anyone, as the library and admins read) may see it."""
        mine = self.reader_groups
        return groups is None or not mine or bool(groups.intersection(mine))


# Embedder names that changed (old -> new, same vectors): recorded collections are renamed on open.
# Before variants existed the fp32 MiniLM embedder was named after its int8-stored *file*.
RENAMED_EMBEDDERS = {"all-MiniLM-L6-v2/onnx-int8": "all-MiniLM-L6-v2/onnx-fp32"}


class Registry:
    def __init__(self, url: str) -> None:
        self._engine = open_database(url)
        migrate(self._engine)
        self._rename_embedders()

    def _rename_embedders(self) -> None:
        """Keep collections built under an old embedder name usable, and their documents up to date.

        Reads the (small) collections table first, so opening an up-to-date registry writes nothing.
        """
        with self._engine.connect() as conn:
            stale = conn.execute(
                sa.select(collections.c.name, collections.c.embedding_model).where(
                    collections.c.embedding_model.in_(list(RENAMED_EMBEDDERS))
                )
            ).all()
        if not stale:
            return
        with self._engine.begin() as conn:
            for name, old in stale:
                new = RENAMED_EMBEDDERS[old]
                conn.execute(
                    collections.update().where(collections.c.name == name).values(embedding_model=new)
                )
                conn.execute(
                    documents.update()
                    .where(documents.c.collection == name, documents.c.pipeline.startswith(old + "|"))
                    .values(pipeline=sa.func.replace(documents.c.pipeline, old + "|", new + "|"))
                )

    def close(self) -> None:
        self._engine.dispose()

    # collections -------------------------------------------------------------------------------
    def get_collection(self, name: str) -> CollectionInfo | None:
        """The collection ``name`` as its live version is (one read of each row: a switch is atomic)."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(collections).where(collections.c.name == name, collections.c.parent.is_(None))
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            if row["live"] != 1:
                build = (
                    conn.execute(
                        sa.select(collections).where(collections.c.name == version_key(name, row["live"]))
                    )
                    .mappings()
                    .first()
                )
                row = build if build is not None else row
            return self._with_counts(conn, _info(name, row))

    def require_collection(self, name: str) -> CollectionInfo:
        info = self.get_collection(name)
        if info is None:
            known = ", ".join(c.name for c in self.list_collections()) or "none yet"
            raise CollectionNotFound(
                f"no collection named {name!r} (known: {known}); "
                f"create one with: lamina ingest PATH -c {name}"
            )
        return info

    def create_collection(
        self,
        name: str,
        embedding_model: str,
        dim: int,
        *,
        store: str | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
    ) -> CollectionInfo:
        check_name(name)
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(collections).values(
                    name=name,
                    embedding_model=embedding_model,
                    dim=dim,
                    created_at=now(),
                    store=store,
                    chunk_tokens=chunk_tokens,
                    overlap_tokens=overlap_tokens,
                    built_at=now(),
                )
            )
        return self.require_collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        with self._engine.connect() as conn:
            names = (
                conn.execute(
                    sa.select(collections.c.name)
                    .where(collections.c.parent.is_(None))
                    .order_by(collections.c.name)
                )
                .scalars()
                .all()
            )
        return [info for n in names if (info := self.get_collection(n)) is not None]

    def delete_collection(self, name: str) -> None:
        """Forget a collection and every version of it (their stores are the caller's to drop)."""
        with self._engine.begin() as conn:
            keys = [
                name,
                *conn.execute(sa.select(collections.c.name).where(collections.c.parent == name)).scalars(),
            ]
            conn.execute(sa.delete(documents).where(documents.c.collection.in_(keys)))
            conn.execute(sa.delete(runs).where(runs.c.collection.in_(keys)))
            conn.execute(sa.delete(collections).where(collections.c.name.in_(keys)))

    def _with_counts(self, conn: sa.Connection, info: CollectionInfo) -> CollectionInfo:
        info.documents, info.chunks = self.counts(conn, info.key)
        info.last_run = self._last_run(conn, info.key)
        return info

    @staticmethod
    def counts(conn: sa.Connection, key: str) -> tuple[int, int]:
        """(documents, chunks) recorded for one build."""
        docs, chunks = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(documents.c.chunks), 0)).where(
                documents.c.collection == key
            )
        ).one()
        return int(docs), int(chunks)

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    # documents ---------------------------------------------------------------------------------
    def documents(self, collection: str) -> dict[str, DocumentRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(documents).where(documents.c.collection == collection).order_by(documents.c.source)
            ).mappings()
            return {
                row["source"]: DocumentRecord(**{k: v for k, v in row.items() if k != "collection"})
                for row in rows
            }

    def upsert_documents(self, collection: str, records: Iterable[DocumentRecord]) -> None:
        values = [{"collection": collection, **r.to_dict()} for r in records]
        if not values:
            return
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(documents).where(
                    documents.c.collection == collection,
                    documents.c.source.in_([v["source"] for v in values]),
                )
            )
            conn.execute(sa.insert(documents), values)

    def delete_documents(self, collection: str, sources: Sequence[str]) -> None:
        if not sources:
            return
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(documents).where(
                    documents.c.collection == collection, documents.c.source.in_(sources)
                )
            )

    # runs --------------------------------------------------------------------------------------
    def start_run(self, collection: str) -> int:
        """Open a run; a run still marked running was killed (kill -9, power loss): say so."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.collection == collection, runs.c.status == "running")
                .values(status="interrupted")
            )
            result = conn.execute(
                sa.insert(runs).values(
                    collection=collection, started_at=now(), status="running", stats="{}", errors="[]"
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(
        self, run_id: int, status: str, stats: dict[str, Any], errors: list[dict[str, str]]
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(finished_at=now(), status=status, stats=json.dumps(stats), errors=json.dumps(errors))
            )

    def _last_run(self, conn: sa.Connection, collection: str) -> dict[str, Any] | None:
        row = (
            conn.execute(
                sa.select(runs).where(runs.c.collection == collection).order_by(runs.c.id.desc()).limit(1)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return {
            "id": row["id"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "status": row["status"],
            "stats": json.loads(row["stats"]),
            "errors": json.loads(row["errors"]),
        }


def _info(name: str, row: Any) -> CollectionInfo:
    """The collection ``name`` as the build ``row`` holds it."""
    return CollectionInfo(
        name=name,
        embedding_model=row["embedding_model"],
        dim=row["dim"],
        created_at=row["created_at"],
        key=row["name"],
        version=row["version"],
        store=row["store"],
        chunk_tokens=row["chunk_tokens"],
        overlap_tokens=row["overlap_tokens"],
    )
