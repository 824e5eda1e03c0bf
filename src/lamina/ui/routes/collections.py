"""The collections pages: list, create, delete; a collection's documents, uploads, jobs and search.

Every action calls the native API's own functions (``lamina.serve.native``) with the signed-in
principal, so the tenant rules, validation and limits are the API's, not a second copy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from lamina.errors import LaminaError
from lamina.serve.http.errors import APIError
from lamina.serve.jobs.manager import TERMINAL
from lamina.serve.jobs.uploads import content_url, public_source
from lamina.serve.native import admin as admin_api
from lamina.serve.native import collections as api
from lamina.serve.native.protocol import CollectionCreate, SearchRequest
from lamina.ui import sse
from lamina.ui.pages import is_htmx
from lamina.ui.problems import problem
from lamina.ui.session import CheckedDep, Session, SessionDep, UIDep, visible_tenant

router = APIRouter(include_in_schema=False)
TenantQuery = Annotated[str | None, Query()]
Mode = Literal["hybrid", "dense", "bm25"]


def _where(tenant: str | None) -> str:
    return "?" + urlencode({"tenant": tenant}) if tenant else ""


def collection_url(name: str, tenant: str | None, suffix: str = "") -> str:
    return f"/collections/{quote(name)}{suffix}{_where(tenant)}"


def _jobs(ui: UIDep, session: Session, name: str, tenant: str | None) -> list[dict[str, Any]]:
    t = api.tenant_of(session.principal, tenant)
    return [j.to_dict() for j in ui.state.jobs.list(t) if j.collection == name]


async def _list(request: Request, ui: UIDep, session: Session, status: int = 200, **extra: Any) -> Response:
    listed = (await api.list_collections(ui.state, session.principal))["data"]
    t = session.principal.tenant
    running = {
        (j.tenant, j.collection)
        for j in ui.state.jobs.list(visible_tenant(session.principal))
        if j.state not in TERMINAL
    }
    for c in listed:
        c["url"] = collection_url(c["name"], None if c["tenant"] == t else c["tenant"])
        c["running"] = (c["tenant"], c["name"]) in running
    return ui.pages.render(
        request,
        "collections.html",
        status=status,
        session=session,
        page="collections",
        collections=listed,
        **extra,
    )


@router.get("/collections")
async def collections_page(request: Request, ui: UIDep, session: SessionDep, deleted: str = "") -> Response:
    return await _list(request, ui, session, deleted=deleted)


@router.post("/collections")
async def create(
    request: Request, ui: UIDep, session: CheckedDep, name: Annotated[str, Form()] = ""
) -> Response:
    try:
        body = CollectionCreate(name=name.strip())
        await api.create_collection(body, ui.state, session.principal)
    except (APIError, LaminaError, ValidationError) as exc:
        status, message = problem(exc)
        return await _list(request, ui, session, status, error=message, name=name)
    return RedirectResponse(collection_url(body.name, None), status_code=303)


async def _collection_context(
    request: Request, ui: UIDep, session: Session, name: str, tenant: str | None
) -> dict[str, Any]:
    docs = await api.list_documents(request, name, ui.state, session.principal, tenant)
    t = api.tenant_of(session.principal, tenant)
    infos = (await api.list_collections(ui.state, session.principal, t))["data"]
    info = next((i for i in infos if i["name"] == name), {"name": name})
    for d in docs["data"]:
        d["content_url"] = content_url("", name, d["id"]) + _where(tenant)
    return {
        "name": name,
        "info": info,
        "documents": docs["data"],
        "last_run": docs["last_run"],
        "tenant": tenant,
        "jobs": _jobs(ui, session, name, tenant),
        "base": collection_url(name, tenant),
        "links": {
            "upload": collection_url(name, tenant, "/documents"),
            "search": collection_url(name, tenant, "/search"),
            "table": collection_url(name, tenant, "/documents-table"),
            "delete": collection_url(name, tenant, "/delete"),
        },
    }


async def _collection_page(
    request: Request,
    ui: UIDep,
    session: SessionDep,
    name: str,
    tenant: str | None,
    template: str,
    **extra: Any,
) -> Response:
    """A full page about one collection, or the error page when the key may not see it."""
    try:
        context = await _collection_context(request, ui, session, name, tenant)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return ui.pages.render(request, template, session=session, page="collections", **extra, **context)


@router.get("/collections/{name}")
async def collection_page(
    request: Request, name: str, ui: UIDep, session: SessionDep, tenant: TenantQuery = None
) -> Response:
    return await _collection_page(request, ui, session, name, tenant, "collection.html")


@router.get("/collections/{name}/documents-table")
async def documents_table(
    request: Request, name: str, ui: UIDep, session: SessionDep, tenant: TenantQuery = None
) -> Response:
    try:
        context = await _collection_context(request, ui, session, name, tenant)
    except APIError as exc:
        return ui.pages.render(request, "_error.html", status=exc.status, message=exc.message)
    return ui.pages.render(request, "_documents_refresh.html", session=session, **context)


@router.post("/collections/{name}/documents")
async def upload(
    request: Request,
    name: str,
    ui: UIDep,
    session: CheckedDep,
    files: Annotated[list[UploadFile], File()] = [],  # noqa: B006
    urls: Annotated[str, Form()] = "",
    tenant: TenantQuery = None,
) -> Response:
    chosen = [f for f in files if f.filename]  # an empty file input still sends one nameless part
    links = [u.strip() for u in urls.split() if u.strip()]
    try:
        job = await api.upload(name, ui.state, session.principal, chosen, links, tenant)
    except (APIError, LaminaError, ValidationError) as exc:
        status, message = problem(exc)
        if is_htmx(request):
            headers = {"HX-Retarget": "#upload-error", "HX-Reswap": "innerHTML"}
            return ui.pages.render(request, "_error.html", status=status, headers=headers, message=message)
        return ui.pages.render(request, "error.html", status=status, session=session, message=message)
    if not is_htmx(request):
        return RedirectResponse(collection_url(name, tenant), status_code=303)
    return ui.pages.render(request, "_job.html", job=job, name=name, tenant=tenant, live=True)


@router.get("/collections/{name}/jobs/{job_id}/events")
async def job_events(
    request: Request, name: str, job_id: str, ui: UIDep, session: SessionDep, tenant: TenantQuery = None
) -> Response:
    """The API's job event stream, each event rendered as the job's card."""
    try:
        upstream = await admin_api.job_events(request, job_id, ui.state, session.principal)
    except APIError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")

    async def events() -> AsyncIterator[bytes]:
        try:
            async for raw in upstream.body_iterator:
                text = raw if isinstance(raw, str) else bytes(raw).decode()
                if not text.startswith("data: "):
                    yield b": keep-alive\n\n"
                    continue
                job = json.loads(text[6:])
                ended = job["state"] in TERMINAL
                html = ui.pages.html("_job_body.html", job=job, name=name, tenant=tenant, refresh=ended)
                yield sse.event("job", html)
                if ended:
                    yield sse.event("done", "")
                    return
        finally:
            close = getattr(upstream.body_iterator, "aclose", None)
            if close is not None:
                await close()

    return sse.stream(events())


@router.get("/collections/{name}/search")
async def search(
    request: Request,
    name: str,
    ui: UIDep,
    session: SessionDep,
    q: str = "",
    mode: Mode = "hybrid",
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    tenant: TenantQuery = None,
) -> Response:
    hits: list[dict[str, Any]] = []
    error = ""
    if q.strip():
        try:
            body = SearchRequest(query=q.strip(), k=k, mode=mode)
            found = await api.search(name, body, ui.state, session.principal, tenant)
            hits = found["data"]
        except (APIError, LaminaError, ValidationError) as exc:
            error = problem(exc)[1]
    uploads = ui.state.tenants.uploads_dir(api.tenant_of(session.principal, tenant), name)
    for h in hits:
        h["name"] = public_source(h["source"], uploads)
        h["url"] = content_url("", name, h["doc_id"], h.get("page")) + _where(tenant)
    search = {"q": q, "mode": mode, "k": k, "hits": hits, "error": error}
    if is_htmx(request):
        return ui.pages.render(request, "_search_results.html", search=search)
    return await _collection_page(request, ui, session, name, tenant, "collection.html", search=search)


@router.get("/collections/{name}/delete")
async def confirm_delete(
    request: Request, name: str, ui: UIDep, session: SessionDep, tenant: TenantQuery = None
) -> Response:
    return await _collection_page(request, ui, session, name, tenant, "confirm_delete.html")


@router.post("/collections/{name}/delete")
async def delete(
    request: Request, name: str, ui: UIDep, session: CheckedDep, tenant: TenantQuery = None
) -> Response:
    try:
        await api.delete_collection(name, ui.state, session.principal, tenant)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return RedirectResponse("/collections?" + urlencode({"deleted": name}), status_code=303)
