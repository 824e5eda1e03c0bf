"""Collections, their documents, search and uploads: thin routes over ``state.services``.

Each route parses the request, calls a service with the calling principal and shapes the answer;
tenant rules and validation live in the services (another tenant's collection is a 404).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from lamina.data.filters import FilterError, check_groups, check_metadata
from lamina.data.metadata import Given
from lamina.serve.errors import bad_request
from lamina.serve.http.deps import PrincipalDep, StateDep, TenantQuery
from lamina.serve.native.protocol import CollectionCreate, SearchRequest

router = APIRouter(prefix="/v1", tags=["Collections"])


@router.get("/collections", summary="Collections of the key's tenant (admins: every tenant's)")
async def list_collections(
    state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return {"object": "list", "data": await state.services.collections.list(principal, tenant)}


@router.post("/collections", status_code=201, summary="Create a collection")
async def create_collection(
    body: CollectionCreate, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.collections.create(principal, body.name, tenant)


@router.get("/collections/{name}", summary="One collection: counts, embedder, its live version")
async def describe_collection(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.collections.describe(principal, name, tenant)


@router.delete("/collections/{name}", summary="Delete a collection with its vectors and uploads")
async def delete_collection(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    await state.services.collections.delete(principal, name, tenant)
    return {"id": name, "object": "collection", "deleted": True}


@router.get("/collections/{name}/documents", summary="A collection's documents and its last run")
async def list_documents(
    request: Request, name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    docs, last_run = await state.services.collections.documents(principal, name, tenant, base_url=base)
    return {"object": "list", "data": docs, "last_run": last_run}


@router.delete("/collections/{name}/documents/{doc_id}", summary="Delete one document")
async def delete_document(
    name: str, doc_id: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    await state.services.collections.delete_document(principal, name, doc_id, tenant)
    return {"id": doc_id, "object": "document", "deleted": True}


@router.get(
    "/collections/{name}/documents/{doc_id}/content", summary="The original file (PDFs open at #page=N)"
)
async def document_content(
    name: str, doc_id: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> Response:
    original = await state.services.collections.original(principal, name, doc_id, tenant)
    if original.url is not None:
        return RedirectResponse(original.url, status_code=307)
    assert original.path is not None
    headers = {"X-Content-Type-Options": "nosniff"}
    if not original.inline_safe:  # a document's own scripts never run on this origin
        headers["Content-Security-Policy"] = "sandbox"
    return FileResponse(
        original.path,
        media_type=original.media_type,
        headers=headers,
        content_disposition_type="inline",
        filename=original.path.name,
    )


@router.post("/collections/{name}/search", summary="Search: the same hits as `lamina search --json`")
async def search(
    name: str, body: SearchRequest, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    hits = await state.services.collections.search(
        principal,
        name,
        body.query,
        k=body.k,
        mode=body.mode,
        source=body.source,
        document=body.document,
        filter=body.filter,
        tenant=tenant,
    )
    return {"object": "list", "mode": body.mode, "data": hits}


@router.post(
    "/collections/{name}/documents", status_code=202, summary="Upload files and/or URLs: an ingest job"
)
async def upload(
    name: str,
    state: StateDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="Files to ingest.")] = [],  # noqa: B006
    urls: Annotated[list[str], Form(description="URLs to fetch and ingest.")] = [],  # noqa: B006
    metadata: Annotated[
        str | None,
        Form(description='Metadata for every document, a JSON object: {"team": "finance", "year": 2025}.'),
    ] = None,
    readers: Annotated[
        list[str], Form(description="Groups that may read the documents (none: the whole tenant).")
    ] = [],  # noqa: B006
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    given = Given(metadata=_metadata(metadata), readers=_readers(readers))
    job = await state.services.jobs.start_ingest(principal, name, files, urls, tenant, given=given)
    return job.to_dict()


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        return check_metadata(json.loads(text))
    except (ValueError, FilterError) as exc:
        raise bad_request(f"metadata: {exc}", param="metadata") from None


def _readers(groups: list[str]) -> tuple[str, ...]:
    try:
        return check_groups(groups)
    except FilterError as exc:
        raise bad_request(str(exc), param="readers") from None
