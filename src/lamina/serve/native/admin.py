"""Ingest jobs (state, live events, cancel, resume), keys (admins) and the request log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from lamina.errors import LaminaError
from lamina.serve.http.auth import require_admin
from lamina.serve.http.deps import authenticated, server_state
from lamina.serve.http.errors import APIError, bad_request, not_found
from lamina.serve.jobs.manager import TERMINAL, Job
from lamina.serve.native.protocol import KeyCreate
from lamina.serve.observe.requestlog import recent
from lamina.serve.openai.streaming import SSE_HEADERS, event
from lamina.serve.policy.costs import usage
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

router = APIRouter(prefix="/v1", tags=["Jobs, keys and logs"])
StateDep = Annotated[ServerState, Depends(server_state)]
PrincipalDep = Annotated[Principal, Depends(authenticated)]
EVENT_POLL_S = 0.2
KEEPALIVE_S = 15.0


def _job(state: ServerState, principal: Principal, job_id: str) -> Job:
    job = state.jobs.get(job_id, None if principal.admin else principal.tenant)
    if job is None:
        raise not_found("job", job_id, param="id")
    return job


@router.get("/jobs", summary="Recent ingest jobs of the key's tenant")
async def list_jobs(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    jobs = state.jobs.list(None if principal.admin else principal.tenant)
    return {"object": "list", "data": [j.to_dict() for j in jobs]}


@router.get("/jobs/{job_id}", summary="An ingest job: state and per-file progress")
async def get_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return _job(state, principal, job_id).to_dict()


@router.get("/jobs/{job_id}/events", summary="The same as server-sent events, until the job ends")
async def job_events(
    request: Request, job_id: str, state: StateDep, principal: PrincipalDep
) -> StreamingResponse:
    job = _job(state, principal, job_id)

    async def events() -> AsyncIterator[bytes]:
        seen, quiet = -1, 0.0
        while True:
            if job.version != seen:
                seen, quiet = job.version, 0.0
                yield event(job.to_dict())
                if job.state in TERMINAL:
                    return
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.delete("/jobs/{job_id}", summary="Cancel a job (between steps; written batches stay)")
async def cancel_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    job = _job(state, principal, job_id)
    if job.state in TERMINAL:
        raise APIError(409, f"job {job_id} has already ended ({job.state})", code="job_ended")
    await asyncio.to_thread(state.jobs.cancel, job)
    return job.to_dict()


@router.post(
    "/jobs/{job_id}/resume", status_code=202, summary="Re-run an interrupted, cancelled or failed job"
)
async def resume_job(job_id: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    job = _job(state, principal, job_id)
    try:
        await asyncio.to_thread(state.jobs.resume, job)
    except LaminaError as exc:
        raise APIError(409, str(exc), code="not_resumable") from None
    return job.to_dict()


@router.get("/keys", summary="Admins: every key (never the key itself)")
async def list_keys(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    require_admin(principal)
    keys = await asyncio.to_thread(state.keys.list)
    return {"object": "list", "data": [k.to_dict() for k in keys]}


@router.post("/keys", status_code=201, summary="Admins: create a key; the key is in this answer only")
async def create_key(body: KeyCreate, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    require_admin(principal)
    try:
        info, key = await asyncio.to_thread(
            state.keys.create,
            body.name,
            tenant=body.tenant,
            admin=body.admin,
            models=body.models,
            limits=body.limits,
        )
    except LaminaError as exc:
        raise bad_request(str(exc), param="name") from None
    return info.to_dict() | {"key": key}


@router.delete("/keys/{name}", summary="Admins: revoke a key")
async def revoke_key(name: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    require_admin(principal)
    if not await asyncio.to_thread(state.keys.revoke, name):
        raise not_found("key", name, param="name")
    state.auth.forget()
    return {"name": name, "revoked": True}


@router.get("/usage", summary="Requests, tokens, spend and cache hits by key, tenant or model")
async def usage_route(
    state: StateDep,
    principal: PrincipalDep,
    by: Annotated[Literal["key", "tenant", "model"], Query()] = "model",
    since: Annotated[str | None, Query(description="ISO time, e.g. 2026-11-01")] = None,
) -> dict[str, Any]:
    await state.request_log.flush()
    tenant = None if principal.admin else principal.tenant
    rows = await asyncio.to_thread(usage, state.engine, by, since=since, tenant=tenant)
    return {"object": "list", "by": by, "data": rows}


@router.get("/logs", summary="The request log, newest first (admins see every tenant)")
async def logs(
    state: StateDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    await state.request_log.flush()
    rows = await asyncio.to_thread(
        recent, state.engine, limit, tenant=None if principal.admin else principal.tenant
    )
    return {"object": "list", "data": json.loads(json.dumps(rows, default=str))}
