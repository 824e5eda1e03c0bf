"""Chunk stores behind one Protocol; LanceDB is the embedded default."""

from lamina.data.store.base import ChunkStore, Where

__all__ = ["ChunkStore", "Where"]
