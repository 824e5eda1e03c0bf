"""Collection versions: builds of one collection side by side, one of them live.

Each version is a build with its own store, embedder and chunking; the registry's collection row
names the live one and the previous one. Switching is one ``UPDATE`` of that row, so every reader
sees the old version or the new one, and a request that opened the collection keeps the build it
opened (see ``Collection``) until it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lamina.data.registry import Registry, now, version_key
from lamina.data.registry_schema import collections, documents, runs
from lamina.errors import CollectionNotFound, LaminaError

BUILDING, READY = "building", "ready"


@dataclass(frozen=True)
class BuildSpec:
    """What a version is built with (``None`` chunking: the configured one)."""

    store: str
    embedding_model: str
    dim: int
    chunk_tokens: int | None = None
    overlap_tokens: int | None = None


@dataclass
class VersionInfo:
    collection: str
    number: int
    key: str
    spec: BuildSpec
    state: str
    created_at: str
    built_at: str | None
    live: bool = False
    previous: bool = False
    documents: int = 0
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "collection.version",
            "collection": self.collection,
            "version": self.number,
            "state": self.state,
            "live": self.live,
            "previous": self.previous,
            "store": self.spec.store,
            "embedding_model": self.spec.embedding_model,
            "dim": self.spec.dim,
            "chunk_tokens": self.spec.chunk_tokens,
            "overlap_tokens": self.spec.overlap_tokens,
            "documents": self.documents,
            "chunks": self.chunks,
            "created_at": self.created_at,
            "built_at": self.built_at,
        }


class Versions:
    """The versions of a workspace's collections, kept in its registry."""

    def __init__(self, registry: Registry, default_store: str, default_chunking: tuple[int, int]) -> None:
        self.registry = registry
        # what a collection from before versions is stored in and chunked with: the configuration
        self.default_store = default_store
        self.default_chunking = default_chunking

    def list(self, name: str) -> list[VersionInfo]:
        with self.registry.engine.connect() as conn:
            head = self._head(conn, name)
            rows = (
                conn.execute(
                    sa.select(collections)
                    .where(sa.or_(collections.c.name == name, collections.c.parent == name))
                    .order_by(collections.c.version)
                )
                .mappings()
                .all()
            )
            out = []
            for row in rows:
                info = self._info(name, row, head)
                info.documents, info.chunks = self.registry.counts(conn, info.key)
                out.append(info)
            return out

    def get(self, name: str, number: int) -> VersionInfo:
        found = self.list(name)
        for info in found:
            if info.number == number:
                return info
        known = ", ".join(str(v.number) for v in found)
        raise CollectionNotFound(f"collection {name!r} has no version {number} (it has: {known})")

    def live(self, name: str) -> VersionInfo:
        return next(v for v in self.list(name) if v.live)

    def building(self, name: str, spec: BuildSpec) -> VersionInfo | None:
        """An unfinished version built with ``spec``: a reindex that was stopped resumes it."""
        for info in self.list(name):
            if info.state == BUILDING and info.spec == spec:
                return info
        return None

    def create(self, name: str, spec: BuildSpec) -> VersionInfo:
        with self.registry.engine.begin() as conn:
            self._head(conn, name)
            top = conn.execute(
                sa.select(sa.func.max(collections.c.version)).where(
                    sa.or_(collections.c.name == name, collections.c.parent == name)
                )
            ).scalar_one()
            number = int(top) + 1
            conn.execute(
                sa.insert(collections).values(
                    name=version_key(name, number),
                    parent=name,
                    version=number,
                    embedding_model=spec.embedding_model,
                    dim=spec.dim,
                    store=spec.store,
                    chunk_tokens=spec.chunk_tokens,
                    overlap_tokens=spec.overlap_tokens,
                    state=BUILDING,
                    created_at=now(),
                )
            )
        return self.get(name, number)

    def mark_ready(self, name: str, number: int) -> None:
        with self.registry.engine.begin() as conn:
            conn.execute(
                sa.update(collections)
                .where(collections.c.name == version_key(name, number))
                .values(state=READY, built_at=now())
            )

    def switch(self, name: str, number: int) -> VersionInfo:
        """Make version ``number`` live, in one statement; the one it replaces becomes ``previous``."""
        target = self.get(name, number)
        if target.state != READY:
            raise LaminaError(
                f"version {number} of {name!r} is still being built; finish it first: "
                f"lamina reindex -c {name} (same options) resumes it"
            )
        with self.registry.engine.begin() as conn:
            head = self._head(conn, name)
            if head["live"] != number:
                conn.execute(
                    sa.update(collections)
                    .where(collections.c.name == name)
                    .values(live=number, previous=head["live"])
                )
        return self.get(name, number)

    def rollback(self, name: str) -> VersionInfo:
        with self.registry.engine.connect() as conn:
            previous = self._head(conn, name)["previous"]
        if previous is None:
            raise LaminaError(f"collection {name!r} has no previous version to roll back to")
        return self.switch(name, int(previous))

    def forget(self, name: str, number: int) -> VersionInfo:
        """Remove a version's records (its store is the caller's to drop); never the live one."""
        info = self.get(name, number)
        if info.live:
            raise LaminaError(f"version {number} is live; switch to another one before dropping it")
        if number == 1:
            raise LaminaError("version 1 holds the collection itself and is dropped with it: lamina drop")
        with self.registry.engine.begin() as conn:
            conn.execute(sa.delete(documents).where(documents.c.collection == info.key))
            conn.execute(sa.delete(runs).where(runs.c.collection == info.key))
            conn.execute(sa.delete(collections).where(collections.c.name == info.key))
            if info.previous:
                conn.execute(sa.update(collections).where(collections.c.name == name).values(previous=None))
        return info

    # rows ---------------------------------------------------------------------------------------
    def _head(self, conn: sa.Connection, name: str) -> Any:
        head = (
            conn.execute(
                sa.select(collections).where(collections.c.name == name, collections.c.parent.is_(None))
            )
            .mappings()
            .first()
        )
        if head is None:
            raise CollectionNotFound(f"no collection named {name!r}")
        return head

    def _info(self, name: str, row: Any, head: Any) -> VersionInfo:
        return VersionInfo(
            collection=name,
            number=row["version"],
            key=row["name"],
            spec=BuildSpec(
                store=row["store"] or self.default_store,
                embedding_model=row["embedding_model"],
                dim=row["dim"],
                chunk_tokens=row["chunk_tokens"] or self.default_chunking[0],
                overlap_tokens=(
                    self.default_chunking[1] if row["overlap_tokens"] is None else row["overlap_tokens"]
                ),
            ),
            state=row["state"],
            created_at=row["created_at"],
            built_at=row["built_at"],
            live=row["version"] == head["live"],
            previous=row["version"] == head["previous"],
        )
