"""Chunk stores behind one Protocol, picked by ``[store] backend``; LanceDB is the embedded default.

A backend is a factory ``(settings, collection, dim) -> ChunkStore`` in ``STORES``: adding one is a
class and a table entry. ``backend`` may also be a ``module:Class`` (or ``module.Class``) path to
your own store, constructed the same way and checked against the Protocol.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from lamina.backends import choose
from lamina.config import Settings, tenant_schema, with_schema
from lamina.data.store.base import ChunkStore, Where
from lamina.data.store.memory import MemoryStore
from lamina.errors import ConfigError

StoreFactory = Callable[[Settings, str, int], ChunkStore]


def _lancedb(settings: Settings, collection: str, dim: int) -> ChunkStore:
    from lamina.data.store.lance import LanceStore

    return LanceStore(settings.vectors_dir, collection, dim, settings.store.read_consistency_s)


_memory_stores: dict[tuple[str, str], MemoryStore] = {}
_memory_lock = threading.Lock()


def _memory(settings: Settings, collection: str, dim: int) -> ChunkStore:
    """One store per data directory and collection for the life of the process (like a file would)."""
    with _memory_lock:
        key = (str(settings.vectors_dir), collection)
        store = _memory_stores.get(key)
        if store is None or store.dim != dim:
            store = _memory_stores[key] = MemoryStore(dim)
        return store


def _pgvector(settings: Settings, collection: str, dim: int) -> ChunkStore:
    from lamina.data.store.pgvector import PgVectorStore

    url = settings.store.url or settings.database_url
    if not url or not url.startswith("postgresql"):
        raise ConfigError(
            "store.backend 'pgvector' needs a Postgres: set store.url or database_url "
            "(postgresql+psycopg://…)"
        )
    return PgVectorStore(with_schema(url, tenant_schema(settings.tenant)), collection, dim)


STORES: dict[str, StoreFactory] = {"lancedb": _lancedb, "memory": _memory, "pgvector": _pgvector}


def _by_path(path: str) -> StoreFactory:
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"store.backend {path!r}: cannot import it ({exc})") from None
    if not callable(factory):
        raise ConfigError(f"store.backend {path!r} is not a class or function")
    return factory  # type: ignore[no-any-return]


def make_store(settings: Settings, collection: str, dim: int, backend: str | None = None) -> ChunkStore:
    """The store for one collection (``dim``: its vectors' size); ``backend`` defaults to the configured."""
    backend = backend or settings.store.backend
    if backend in STORES or (":" not in backend and "." not in backend):
        factory = choose(STORES, backend, "store.backend", also=" or a 'module:Class' path")
    else:
        factory = _by_path(backend)
    store = factory(settings, collection, dim)
    if not isinstance(store, ChunkStore):
        raise ConfigError(f"store.backend {backend!r} made a {type(store).__name__}, not a ChunkStore")
    return store


__all__ = ["STORES", "ChunkStore", "MemoryStore", "StoreFactory", "Where", "make_store"]
