"""``CollectionTools`` over a running Lamina server, through the Python SDK (``lamina mcp`` with a key).

The server decides what the key sees and spends: its tenant's collections, its budgets. A 404 is
"no such collection"; any other refusal (401, 403, 429, 503) is a tool error with the server's words.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from lamina.client import AsyncLamina, SearchHit
from lamina.client import errors as client_errors
from lamina.client.types import Citation
from lamina.mcp.tools import CollectionToolError, Filter, no_such_collection

__all__ = ["RemoteTools"]

T = TypeVar("T")


class RemoteTools:
    """The tools answered by the server at ``client.base_url`` with the client's key."""

    def __init__(self, client: AsyncLamina) -> None:
        self.client = client

    async def list_collections(self) -> list[dict[str, Any]]:
        found = await _call(self.client.collections.list())
        return [
            {"name": c.name, "tenant": c.tenant, "documents": c.documents, "chunks": c.chunks} for c in found
        ]

    async def search(
        self, collection: str, query: str, k: int, filter: Filter = None
    ) -> list[dict[str, Any]]:
        hits = await _call(self.client.search(query, collection=collection, k=k, filter=filter), collection)
        return [_passage(h) for h in hits]

    async def answer(self, collection: str, question: str, filter: Filter = None) -> dict[str, Any]:
        found = await _call(self.client.answer(question, collection=collection, filter=filter), collection)
        return {
            "answer": found.text,
            "sources": [_source(c) for c in found.citations],
            "grounded": found.grounded,
            "model": found.model,
        }


async def _call(call: Awaitable[T], collection: str | None = None) -> T:
    try:
        return await call
    except client_errors.NotFoundError as exc:
        if collection is not None and exc.code != "model_not_found":
            raise no_such_collection(collection) from None
        raise CollectionToolError(str(exc)) from None
    except client_errors.LaminaError as exc:  # refused, unreachable, busy: the server's own words
        raise CollectionToolError(str(exc)) from None


def _passage(h: SearchHit) -> dict[str, Any]:
    keys = {"source": h.source, "title": h.title, "page": h.page, "score": h.score, "text": h.text}
    return keys | {"metadata": h.metadata}


def _source(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "source": c.source, "title": c.title, "page": c.page, "url": c.url}
