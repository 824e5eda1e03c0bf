"""Collections, their documents and search, per tenant: another tenant's collection is a 404.

Depends on the tenants' workspaces only. Every method takes the calling principal and the tenant it
names (``None``: its own), and resolves that through :mod:`lamina.serve.services.access`.
"""

from __future__ import annotations

import asyncio
import builtins
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.data.collection import Collection, SearchMode
from lamina.data.registry import CollectionInfo, DocumentRecord
from lamina.data.sources import is_url
from lamina.errors import CollectionNotFound, LaminaError
from lamina.serve.errors import APIError, not_found
from lamina.serve.jobs.uploads import content_url, public_source
from lamina.serve.policy.keys import Principal
from lamina.serve.policy.tenants import Tenants
from lamina.serve.services.access import tenant_for, visible_tenants, where_for

__all__ = ["INLINE_SAFE", "CollectionService", "Original"]

INLINE_SAFE = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(frozen=True)
class Original:
    """Where a document's original is: a URL to redirect to, or a file on this server."""

    url: str | None = None
    path: Path | None = None
    media_type: str = "application/octet-stream"

    @property
    def inline_safe(self) -> bool:
        """Whether the browser may render it on this origin (a document's own scripts never run)."""
        return self.media_type in INLINE_SAFE


def _collection(info: CollectionInfo, tenant: str) -> dict[str, Any]:
    return {"object": "collection", "tenant": tenant, **info.to_dict()}


class CollectionService:
    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants

    async def open(self, principal: Principal, name: str, tenant: str | None = None) -> Collection:
        """The collection ``name`` of the tenant acted for; 404 when it does not exist there."""
        t = tenant_for(principal, tenant)
        try:
            return await asyncio.to_thread(self.tenants.workspace(t).collection, name)
        except CollectionNotFound:
            raise not_found("collection", name, param="name") from None
        except LaminaError as exc:  # an invalid name cannot exist either
            raise not_found("collection", name, param="name") from exc

    def uploads_dir(self, principal: Principal, name: str, tenant: str | None = None) -> Path:
        return self.tenants.uploads_dir(tenant_for(principal, tenant), name)

    async def list(self, principal: Principal, tenant: str | None = None) -> list[dict[str, Any]]:
        """Collections of the tenant named, or of every tenant the key sees."""
        if tenant is None:
            tenants = await asyncio.to_thread(visible_tenants, principal, self.tenants.known)
        else:
            tenants = [tenant_for(principal, tenant)]
        data: list[dict[str, Any]] = []
        for t in tenants:
            infos = await asyncio.to_thread(self.tenants.workspace(t).collections)
            data += [_collection(i, t) for i in infos]
        return data

    async def describe(self, principal: Principal, name: str, tenant: str | None = None) -> dict[str, Any]:
        coll = await self.open(principal, name, tenant)
        return _collection(coll.info, tenant_for(principal, tenant))

    async def create(self, principal: Principal, name: str, tenant: str | None = None) -> dict[str, Any]:
        t = tenant_for(principal, tenant)
        ws = self.tenants.workspace(t)
        if await asyncio.to_thread(ws.registry.get_collection, name) is not None:
            raise APIError(409, f"collection {name!r} exists already", param="name", code="already_exists")
        coll = await asyncio.to_thread(ws.collection, name, create=True)
        return _collection(coll.info, t)

    async def delete(self, principal: Principal, name: str, tenant: str | None = None) -> None:
        await self.open(principal, name, tenant)
        await asyncio.to_thread(self.tenants.workspace(tenant_for(principal, tenant)).drop, name)

    # documents -----------------------------------------------------------------------------------
    async def documents(
        self, principal: Principal, name: str, tenant: str | None = None, *, base_url: str = ""
    ) -> tuple[builtins.list[dict[str, Any]], Any]:
        """(the collection's documents, its last run); content URLs start with ``base_url``."""
        coll = await self.open(principal, name, tenant)
        docs = await asyncio.to_thread(coll.documents)
        uploads = self.uploads_dir(principal, name, tenant)
        readable = [d for d in docs if d.readable_by(principal.readers)]
        return [_document(d, name, uploads, base_url) for d in readable], coll.info.last_run

    async def delete_document(
        self, principal: Principal, name: str, doc_id: str, tenant: str | None = None
    ) -> None:
        coll = await self.open(principal, name, tenant)
        doc = await _find_document(coll, doc_id, principal)
        await asyncio.to_thread(coll.delete_documents, [doc.source])
        path = Path(doc.source)
        if path.parent == self.uploads_dir(principal, name, tenant).resolve():
            path.unlink(missing_ok=True)

    async def original(
        self, principal: Principal, name: str, doc_id: str, tenant: str | None = None
    ) -> Original:
        """Where a document's original is; 410 when its file is no longer on the server."""
        coll = await self.open(principal, name, tenant)
        doc = await _find_document(coll, doc_id, principal)
        if is_url(doc.source):
            return Original(url=doc.source)
        path = Path(doc.source)
        if not path.is_file():
            raise APIError(
                410, "the original file is no longer on the server", "not_found_error", code="gone"
            )
        return Original(
            path=path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )

    # search --------------------------------------------------------------------------------------
    async def search(
        self,
        principal: Principal,
        name: str,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode = "hybrid",
        source: str | None = None,
        document: str | None = None,
        filter: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Hits as ``lamina search --json`` gives them, with uploads named by their file name; only
        documents the key may read (``where_for``)."""
        where = where_for(principal, filter=filter, source=source, document=document)
        coll = await self.open(principal, name, tenant)
        hits = await asyncio.to_thread(coll.search, query, k, mode=mode, where=where)
        uploads = self.uploads_dir(principal, name, tenant)
        extra = {"version": coll.info.version}  # the build the hits came from (see ``lamina versions``)
        return [
            h.to_dict() | {"source": public_source(h.source, uploads), "scores": h.scores} | extra
            for h in hits
        ]


def _document(d: DocumentRecord, coll: str, uploads: Path, base: str) -> dict[str, Any]:
    return {
        "id": d.doc_id,
        "object": "document",
        "source": public_source(d.source, uploads),
        "title": d.title,
        "format": d.format,
        "chunks": d.chunks,
        "tokens": d.tokens,
        "size_bytes": d.size_bytes,
        "coverage": d.coverage,
        "updated_at": d.updated_at,
        "metadata": d.metadata,
        "readers": list(d.reader_groups),
        "origin": d.origin,
        "content_url": content_url(base, coll, d.doc_id),
    }


async def _find_document(coll: Collection, doc_id: str, principal: Principal) -> DocumentRecord:
    """The document, if this key may read it: another reader's document is a 404, as a missing one."""
    docs = await asyncio.to_thread(coll.documents)
    for d in docs:
        if d.doc_id == doc_id and d.readable_by(principal.readers):
            return d
    raise not_found("document", doc_id, param="id")
