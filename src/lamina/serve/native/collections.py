"""Collections, their documents, search and uploads, per tenant. Another tenant's collection is a 404."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from lamina.data.collection import Collection
from lamina.data.registry import DocumentRecord
from lamina.data.sources import is_url
from lamina.data.store.base import Where
from lamina.errors import CollectionNotFound, LaminaError
from lamina.serve.http.auth import require_admin
from lamina.serve.http.deps import authenticated, server_state
from lamina.serve.http.errors import APIError, bad_request, not_found
from lamina.serve.jobs.manager import Item
from lamina.serve.jobs.uploads import content_url, public_source, save, too_large
from lamina.serve.native.protocol import CollectionCreate, SearchRequest
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

router = APIRouter(prefix="/v1", tags=["Collections"])
StateDep = Annotated[ServerState, Depends(server_state)]
PrincipalDep = Annotated[Principal, Depends(authenticated)]
TenantQuery = Annotated[str | None, Query(description="Admins: act for this tenant.")]
INLINE_SAFE = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"}


def tenant_of(principal: Principal, tenant: str | None) -> str:
    """The tenant a request acts for: the key's own, or (admins only) the one named."""
    if tenant is None or tenant == principal.tenant:
        return principal.tenant
    require_admin(principal)
    return tenant


async def open_collection(state: ServerState, tenant: str, name: str) -> Collection:
    try:
        return await asyncio.to_thread(state.tenants.workspace(tenant).collection, name)
    except CollectionNotFound:
        raise not_found("collection", name, param="name") from None
    except LaminaError as exc:  # an invalid name cannot exist either
        raise not_found("collection", name, param="name") from exc


def _collection(info: Any, tenant: str) -> dict[str, Any]:
    return {"object": "collection", "tenant": tenant, **info.to_dict()}


@router.get("/collections", summary="Collections of the key's tenant (admins: every tenant's)")
async def list_collections(
    state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    tenants = [tenant_of(principal, tenant)]
    if principal.admin and tenant is None:
        tenants = await asyncio.to_thread(state.tenants.known)
    data = []
    for t in tenants:
        infos = await asyncio.to_thread(state.tenants.workspace(t).collections)
        data += [_collection(i, t) for i in infos]
    return {"object": "list", "data": data}


@router.post("/collections", status_code=201, summary="Create a collection")
async def create_collection(
    body: CollectionCreate, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    t = tenant_of(principal, tenant)
    ws = state.tenants.workspace(t)
    if await asyncio.to_thread(ws.registry.get_collection, body.name) is not None:
        raise APIError(409, f"collection {body.name!r} exists already", param="name", code="already_exists")
    coll = await asyncio.to_thread(ws.collection, body.name, create=True)
    return _collection(coll.info, t)


@router.delete("/collections/{name}", summary="Delete a collection with its vectors and uploads")
async def delete_collection(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    t = tenant_of(principal, tenant)
    await open_collection(state, t, name)
    await asyncio.to_thread(state.tenants.workspace(t).drop, name)
    return {"id": name, "object": "collection", "deleted": True}


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
        "updated_at": d.updated_at,
        "content_url": content_url(base, coll, d.doc_id),
    }


@router.get("/collections/{name}/documents", summary="A collection's documents and its last run")
async def list_documents(
    request: Request, name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    t = tenant_of(principal, tenant)
    coll = await open_collection(state, t, name)
    docs = await asyncio.to_thread(coll.documents)
    uploads, base = state.tenants.uploads_dir(t, name), str(request.base_url).rstrip("/")
    return {
        "object": "list",
        "data": [_document(d, name, uploads, base) for d in docs],
        "last_run": coll.info.last_run,
    }


async def _find_document(coll: Collection, doc_id: str) -> DocumentRecord:
    docs = await asyncio.to_thread(coll.documents)
    for d in docs:
        if d.doc_id == doc_id:
            return d
    raise not_found("document", doc_id, param="id")


@router.delete("/collections/{name}/documents/{doc_id}", summary="Delete one document")
async def delete_document(
    name: str, doc_id: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    t = tenant_of(principal, tenant)
    coll = await open_collection(state, t, name)
    doc = await _find_document(coll, doc_id)
    await asyncio.to_thread(coll.delete_documents, [doc.source])
    path = Path(doc.source)
    if path.parent == state.tenants.uploads_dir(t, name).resolve():
        path.unlink(missing_ok=True)
    return {"id": doc_id, "object": "document", "deleted": True}


@router.get(
    "/collections/{name}/documents/{doc_id}/content", summary="The original file (PDFs open at #page=N)"
)
async def document_content(
    name: str, doc_id: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> Response:
    coll = await open_collection(state, tenant_of(principal, tenant), name)
    doc = await _find_document(coll, doc_id)
    if is_url(doc.source):
        return RedirectResponse(doc.source, status_code=307)
    path = Path(doc.source)
    if not path.is_file():
        raise APIError(410, "the original file is no longer on the server", "not_found_error", code="gone")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"X-Content-Type-Options": "nosniff"}
    if media not in INLINE_SAFE:  # a document's own scripts never run on this origin
        headers["Content-Security-Policy"] = "sandbox"
    return FileResponse(
        path, media_type=media, headers=headers, content_disposition_type="inline", filename=path.name
    )


@router.post("/collections/{name}/search", summary="Search: the same hits as `lamina search --json`")
async def search(
    name: str, body: SearchRequest, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    coll = await open_collection(state, tenant_of(principal, tenant), name)
    where = Where(source_glob=body.source, document=body.document)
    hits = await asyncio.to_thread(coll.search, body.query, body.k, mode=body.mode, where=where)
    uploads = state.tenants.uploads_dir(tenant_of(principal, tenant), name)
    return {
        "object": "list",
        "mode": body.mode,
        "data": [
            h.to_dict() | {"source": public_source(h.source, uploads), "scores": h.scores} for h in hits
        ],
    }


@router.post(
    "/collections/{name}/documents", status_code=202, summary="Upload files and/or URLs: an ingest job"
)
async def upload(
    name: str,
    state: StateDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="Files to ingest.")] = [],  # noqa: B006
    urls: Annotated[list[str], Form(description="URLs to fetch and ingest.")] = [],  # noqa: B006
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    t = tenant_of(principal, tenant)
    await open_collection(state, t, name)
    if not files and not urls:
        raise bad_request("send files (multipart field 'files') and/or URLs (field 'urls')", param="files")
    serve = state.settings.serve
    limit = int(serve.max_upload_mb * 1024 * 1024)
    for f in files:
        if f.size is not None and f.size > limit:
            raise too_large(f"file {f.filename!r}", f.size, serve.max_upload_mb)
    for url in urls:
        if not is_url(url):
            raise bad_request(f"not an http(s) URL: {url[:200]!r}", param="urls")
    folder = state.tenants.uploads_dir(t, name)
    items: list[Item] = []
    for f in files:
        data = await f.read()
        if len(data) > limit:
            raise too_large(f"file {f.filename!r}", len(data), serve.max_upload_mb)
        path = await asyncio.to_thread(save, folder, f.filename or "", data)
        items.append(Item(str(path), path.name))
    items += [Item(url, url) for url in urls]
    items = list({i.source: i for i in items}.values())  # the same name twice is one document
    job = await asyncio.to_thread(state.jobs.submit, t, name, items)
    return job.to_dict()
