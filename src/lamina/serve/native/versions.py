"""Collection versions, for admins: thin routes over ``state.services.versions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lamina.serve.http.deps import PrincipalDep, StateDep, TenantQuery
from lamina.serve.native.protocol import ReindexRequest, SwitchRequest

router = APIRouter(prefix="/v1/collections/{name}", tags=["Collection versions"])


@router.get("/versions", summary="A collection's versions: settings, size, which is live")
async def list_versions(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return {"object": "list", "data": await state.services.versions.list(principal, name, tenant)}


@router.post("/versions", status_code=202, summary="Build a new version beside the live one: a reindex job")
async def reindex(
    name: str, body: ReindexRequest, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    options = body.model_dump(exclude_none=True)
    job = await state.services.versions.reindex(principal, name, options, tenant)
    return job.to_dict()


@router.post("/switch", summary="Make a version live (atomic)")
async def switch(
    name: str, body: SwitchRequest, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.versions.switch(principal, name, body.version, tenant)


@router.post("/rollback", summary="Make the previous live version live again")
async def rollback(
    name: str, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return await state.services.versions.rollback(principal, name, tenant)


@router.delete("/versions/{version}", summary="Drop a version that is not live")
async def drop_version(
    name: str, version: int, state: StateDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    dropped = await state.services.versions.drop(principal, name, version, tenant)
    return dropped | {"deleted": True}
