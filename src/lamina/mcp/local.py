"""``CollectionTools`` over the local workspace beside the data (``lamina mcp`` without a key).

What ``lamina search`` and ``lamina ask`` do, from a desktop client: no server, no keys, every
collection of the data directory. The workspace and the model are blocking, so each call runs in
a worker thread; one model is loaded on the first answer and kept.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lamina.data.collection import Collection, Workspace
from lamina.data.filters import parse_filter
from lamina.data.sources import is_url
from lamina.data.store.base import Where
from lamina.data.types import Hit
from lamina.engine.model import Models
from lamina.errors import CollectionNotFound, LaminaError
from lamina.mcp.tools import CollectionToolError, Filter, no_such_collection
from lamina.rag.answer import Answerer
from lamina.rag.types import Citation

__all__ = ["LocalTools"]

T = TypeVar("T")


class LocalTools:
    """The tools answered from ``workspace``'s collections, with its default model."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._models: Models | None = None
        self._lock = threading.Lock()  # two answers at once load one model

    def models(self) -> Models:
        with self._lock:
            if self._models is None:
                self._models = Models(self.workspace.settings)
            return self._models

    def close(self) -> None:
        if self._models is not None:
            self._models.close()

    async def list_collections(self) -> list[dict[str, Any]]:
        infos = await _run(self.workspace.collections)
        return [{"name": i.name, "documents": i.documents, "chunks": i.chunks} for i in infos]

    async def search(
        self, collection: str, query: str, k: int, filter: Filter = None
    ) -> list[dict[str, Any]]:
        coll = await self._open(collection)
        where = await _run(lambda: _where(filter))
        hits = await _run(lambda: coll.search(query, k, mode="hybrid", where=where))
        return [_passage(h) for h in hits]

    async def answer(self, collection: str, question: str, filter: Filter = None) -> dict[str, Any]:
        coll = await self._open(collection)

        def ask() -> dict[str, Any]:
            settings = self.workspace.settings.rag
            found = Answerer(coll, self.models().get(), settings, where=_where(filter)).ask(question)
            return {
                "answer": found.answer,
                "sources": [_source(c) for c in found.citations],
                "grounded": found.grounded,
                "model": found.model,
            }

        return await _run(ask)

    async def _open(self, name: str) -> Collection:
        try:
            return await asyncio.to_thread(self.workspace.collection, name)
        except CollectionNotFound:
            raise no_such_collection(name) from None
        except LaminaError:  # an invalid name cannot exist either
            raise no_such_collection(name) from None


async def _run(work: Callable[[], T]) -> T:
    """Blocking work in a thread; an error Lamina raised on purpose is the tool's error."""
    try:
        return await asyncio.to_thread(work)
    except LaminaError as exc:
        raise CollectionToolError(str(exc)) from None


def _where(filter: Filter) -> Where | None:
    """The local workspace reads every document (as the library does): only the metadata filter."""
    return Where(fields=parse_filter(filter)) if filter else None


def _passage(h: Hit) -> dict[str, Any]:
    keys = {"source": h.source, "title": h.title, "page": h.page, "score": h.score, "text": h.text}
    return keys | {"metadata": h.metadata}


def _source(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "source": c.source, "title": c.title, "page": c.page, "url": _url(c.source, c.page)}


def _url(source: str, page: int | None) -> str | None:
    """A web page's own address, or the local file's (at the page, which PDF viewers honour)."""
    if is_url(source):
        return source
    path = Path(source)
    if not path.is_absolute():
        return None
    return path.as_uri() + (f"#page={page}" if page else "")
