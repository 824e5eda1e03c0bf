"""A collection's sources on its page: the section (it polls itself while a sync runs) and "Sync now".

Both call ``state.services.sources`` with the signed-in principal: anyone of the tenant sees the
sources; only an admin may ask for a sync, and the service refuses anyone else (403), shown as the
other pages show a refusal. The sync itself is not run here: a worker takes it (ui.sources).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from lamina.errors import LaminaError
from lamina.serve.errors import APIError
from lamina.ui.pages import is_htmx
from lamina.ui.problems import problem
from lamina.ui.session import CheckedDep, SessionDep, UIDep
from lamina.ui.sources import section

router = APIRouter(include_in_schema=False)
TenantQuery = Annotated[str | None, Query()]


@router.get("/collections/{name}/sources")
async def sources_section(
    request: Request,
    name: str,
    ui: UIDep,
    session: SessionDep,
    tenant: TenantQuery = None,
    wait: str = "",
    since: str = "",
    n: Annotated[int, Query(ge=0)] = 0,
    asked: bool = False,
) -> Response:
    """The section alone: what it shows after each poll."""
    try:
        sources = await ui.state.services.sources.list(session.principal, name, tenant)
    except APIError as exc:
        return ui.pages.render(request, "_error.html", status=exc.status, message=exc.message)
    context = section(sources, name, tenant, wait=wait, since=since, polls=n, asked=asked)
    return ui.pages.render(request, "_sources.html", session=session, name=name, section=context)


@router.post("/collections/{name}/sources/{source}/sync")
async def sync_now(
    request: Request, name: str, source: str, ui: UIDep, session: CheckedDep, tenant: TenantQuery = None
) -> Response:
    """Admins: mark the source due; the section then waits for its sync to end."""
    sources = ui.state.services.sources
    try:
        before = await sources.list(session.principal, name, tenant)
        await sources.sync(session.principal, name, source, tenant)
        after = await sources.list(session.principal, name, tenant)
    except (APIError, LaminaError) as exc:
        status, message = problem(exc)
        if is_htmx(request):
            headers = {"HX-Retarget": "#sources-error", "HX-Reswap": "innerHTML"}
            return ui.pages.render(request, "_error.html", status=status, headers=headers, message=message)
        return ui.pages.render(request, "error.html", status=status, session=session, message=message)
    since = next((s["last_sync_at"] or "" for s in before if s["name"] == source), "")
    if not is_htmx(request):
        query = {"tenant": tenant or "", "wait": source, "since": since, "asked": "1"}
        target = f"/collections/{quote(name)}?" + urlencode({k: v for k, v in query.items() if v})
        return RedirectResponse(target + "#sources-h", status_code=303)
    context = section(after, name, tenant, wait=source, since=since, asked=True)
    return ui.pages.render(request, "_sources.html", session=session, name=name, section=context)
