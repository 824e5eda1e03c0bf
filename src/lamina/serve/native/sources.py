"""A collection's sources: thin routes over ``state.services.sources`` (docs/sources.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lamina.serve.http.deps import PrincipalDep, StateDep, TenantQuery
from lamina.serve.native.protocol import SourceCreate

router = APIRouter(prefix="/v1/collections/{name}/sources", tags=["Sources"])


@router.get("", summary="The collection's sources: last sync (status, changes, errors), next sync")
async def list_sources(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return {"object": "list", "data": await state.services.sources.list(principal, name, tenant)}


@router.post("", status_code=201, summary="Admins: add a source (or change the one of that name)")
async def put_source(
    name: str, body: SourceCreate, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.sources.put(principal, name, body.model_dump(), tenant)


@router.post("/{source}/sync", status_code=202, summary="Admins: sync now (the next free worker does)")
async def sync_source(
    name: str, source: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.sources.sync(principal, name, source, tenant)


@router.delete("/{source}", summary="Admins: remove a source and the documents it brought")
async def remove_source(
    name: str,
    source: str,
    state: StateDep,
    principal: PrincipalDep,
    keep_documents: Annotated[bool, Query(description="Keep the documents it brought.")] = False,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    deleted = await state.services.sources.remove(principal, name, source, keep_documents, tenant)
    return {"name": source, "object": "source", "deleted": True, "documents_deleted": deleted}
