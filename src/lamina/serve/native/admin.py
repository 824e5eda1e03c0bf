"""Ingest jobs (state, live events, cancel, resume), keys (admins) and the request log.

Thin routes over ``state.services``: another tenant's job is a 404, keys need an admin key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from lamina.serve.http.deps import PrincipalDep, StateDep
from lamina.serve.native.protocol import KeyCreate
from lamina.serve.openai.streaming import SSE_HEADERS

router = APIRouter(prefix="/v1", tags=["Jobs, keys and logs"])


@router.get("/jobs", summary="Recent ingest jobs of the key's tenant")
async def list_jobs(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"object": "list", "data": [j.to_dict() for j in state.services.jobs.list(principal)]}


@router.get("/jobs/{job_id}", summary="An ingest job: state and per-file progress")
async def get_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return state.services.jobs.get(principal, job_id).to_dict()


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


@router.get("/jobs/{job_id}/events", summary="The same as server-sent events, until the job ends")
async def job_events(
    request: Request, job_id: str, state: StateDep, principal: PrincipalDep
) -> StreamingResponse:
    jobs = state.services.jobs
    job = jobs.get(principal, job_id)

    async def events() -> AsyncIterator[bytes]:
        async for data in jobs.watch(job, request.is_disconnected):
            yield b": keep-alive\n\n" if data is None else _event(data)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.delete("/jobs/{job_id}", summary="Cancel a job (between steps; written batches stay)")
async def cancel_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return (await state.services.jobs.cancel(principal, job_id)).to_dict()


@router.post(
    "/jobs/{job_id}/resume", status_code=202, summary="Re-run an interrupted, cancelled or failed job"
)
async def resume_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return (await state.services.jobs.resume(principal, job_id)).to_dict()


@router.get("/keys", summary="Admins: every key (never the key itself)")
async def list_keys(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    keys = await state.services.keys.list(principal)
    return {"object": "list", "data": [k.to_dict() for k in keys]}


@router.post("/keys", status_code=201, summary="Admins: create a key; the key is in this answer only")
async def create_key(body: KeyCreate, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    info, key = await state.services.keys.create(
        principal,
        body.name,
        tenant=body.tenant,
        admin=body.admin,
        models=body.models,
        limits=body.limits,
        groups=body.groups,
    )
    return info.to_dict() | {"key": key}


@router.delete("/keys/{name}", summary="Admins: revoke a key")
async def revoke_key(name: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    await state.services.keys.revoke(principal, name)
    return {"name": name, "revoked": True}


@router.get("/usage", summary="Requests, tokens, spend and cache hits by key, tenant or model")
async def usage_route(
    state: StateDep,
    principal: PrincipalDep,
    by: Annotated[Literal["key", "tenant", "model"], Query()] = "model",
    since: Annotated[str | None, Query(description="ISO time, e.g. 2026-11-01")] = None,
) -> dict[str, Any]:
    rows = await state.services.usage.summary(principal, by, since)
    return {"object": "list", "by": by, "data": rows}


@router.get("/logs", summary="The request log, newest first (admins see every tenant)")
async def logs(
    state: StateDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    return {"object": "list", "data": await state.services.usage.recent(principal, limit)}
