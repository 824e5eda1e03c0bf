"""The collections pages: list, create, delete; a collection's documents, uploads, jobs and search.

Every action calls the same services as the API (``state.services``) with the signed-in principal,
so the tenant rules, validation and limits are the API's, not a second copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from lamina.errors import LaminaError
from lamina.serve.errors import APIError
from lamina.serve.jobs.manager import TERMINAL
from lamina.serve.jobs.uploads import content_url
from lamina.serve.native.protocol import CollectionCreate, SearchRequest
from lamina.ui import sse
from lamina.ui.pages import is_htmx
from lamina.ui.problems import problem
from lamina.ui.session import CheckedDep, Session, SessionDep, UIDep
from lamina.ui.sources import section

router = APIRouter(include_in_schema=False)
TenantQuery = Annotated[str | None, Query()]
Mode = Literal["hybrid", "dense", "bm25"]


def _where(tenant: str | None) -> str:
    return "?" + urlencode({"tenant": tenant}) if tenant else ""


def collection_url(name: str, tenant: str | None, suffix: str = "") -> str:
    return f"/collections/{quote(name)}{suffix}{_where(tenant)}"


def _jobs(ui: UIDep, session: Session, name: str, tenant: str | None) -> list[dict[str, Any]]:
    p = session.principal
    return [j.to_dict() for j in ui.state.services.jobs.list(p, tenant=tenant or p.tenant, collection=name)]


async def _list(request: Request, ui: UIDep, session: Session, status: int = 200, **extra: Any) -> Response:
    services = ui.state.services
    listed = await services.collections.list(session.principal)
    t = session.principal.tenant
    running = {
        (j.tenant, j.collection) for j in services.jobs.list(session.principal) if j.state not in TERMINAL
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
        await ui.state.services.collections.create(session.principal, body.name)
    except (APIError, LaminaError, ValidationError) as exc:
        status, message = problem(exc)
        return await _list(request, ui, session, status, error=message, name=name)
    return RedirectResponse(collection_url(body.name, None), status_code=303)


async def _collection_context(
    request: Request, ui: UIDep, session: Session, name: str, tenant: str | None, **watching: Any
) -> dict[str, Any]:
    """Everything the page shows; ``watching``: the sync its sources section waits for (see ui.sources)."""
    collections = ui.state.services.collections
    info = await collections.describe(session.principal, name, tenant)
    docs, last_run = await collections.documents(session.principal, name, tenant)
    sources = await ui.state.services.sources.list(session.principal, name, tenant)
    for d in docs:
        d["content_url"] = content_url("", name, d["id"]) + _where(tenant)
    return {
        "name": name,
        "info": info,
        "documents": docs,
        "last_run": last_run,
        "tenant": tenant,
        "jobs": _jobs(ui, session, name, tenant),
        "section": section(sources, name, tenant, **watching),
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
    watching: dict[str, Any] | None = None,
    **extra: Any,
) -> Response:
    """A full page about one collection, or the error page when the key may not see it."""
    try:
        context = await _collection_context(request, ui, session, name, tenant, **(watching or {}))
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return ui.pages.render(request, template, session=session, page="collections", **extra, **context)


@router.get("/collections/{name}")
async def collection_page(
    request: Request,
    name: str,
    ui: UIDep,
    session: SessionDep,
    tenant: TenantQuery = None,
    wait: str = "",
    since: str = "",
    asked: bool = False,
) -> Response:
    """The page; ``wait``, ``since`` and ``asked`` come from "Sync now" without htmx (routes/sources)."""
    watching = {"wait": wait, "since": since, "asked": asked}
    return await _collection_page(request, ui, session, name, tenant, "collection.html", watching)


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
        job = (
            await ui.state.services.jobs.start_ingest(session.principal, name, chosen, links, tenant)
        ).to_dict()
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
    """The job each time it moves (the same watch as the API's event stream), rendered as its card."""
    jobs = ui.state.services.jobs
    try:
        watched = jobs.get(session.principal, job_id)
    except APIError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")

    async def events() -> AsyncIterator[bytes]:
        async for job in jobs.watch(watched, request.is_disconnected):
            if job is None:
                yield b": keep-alive\n\n"
                continue
            ended = job["state"] in TERMINAL
            html = ui.pages.html("_job_body.html", job=job, name=name, tenant=tenant, refresh=ended)
            yield sse.event("job", html)
            if ended:
                yield sse.event("done", "")
                return

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
            hits = await ui.state.services.collections.search(
                session.principal, name, body.query, k=body.k, mode=body.mode, tenant=tenant
            )
        except (APIError, LaminaError, ValidationError) as exc:
            error = problem(exc)[1]
    for h in hits:
        h["name"] = h["source"]  # already the upload's file name, not the server's path
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
        await ui.state.services.collections.delete(session.principal, name, tenant)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return RedirectResponse("/collections?" + urlencode({"deleted": name}), status_code=303)
