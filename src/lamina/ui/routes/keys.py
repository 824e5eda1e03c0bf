"""Admins: API keys. Create (the secret is shown once), list with budgets and what they spent, revoke."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from lamina.config import LimitSettings
from lamina.serve.errors import APIError
from lamina.serve.native.protocol import KeyCreate
from lamina.serve.services.access import require_admin
from lamina.ui.problems import problem
from lamina.ui.session import CheckedDep, Session, SessionDep, UIDep

router = APIRouter(include_in_schema=False)


async def _page(request: Request, ui: UIDep, session: Session, status: int = 200, **extra: Any) -> Response:
    service = ui.state.services.keys
    try:
        infos = await service.list(session.principal)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    keys = [k.to_dict() | {"spent": await asyncio.to_thread(service.spent, k)} for k in infos]
    models = list(ui.state.settings.models)
    return ui.pages.render(
        request, "keys.html", status=status, session=session, page="keys", keys=keys, models=models, **extra
    )


@router.get("/keys")
async def keys_page(request: Request, ui: UIDep, session: SessionDep, revoked: str = "") -> Response:
    return await _page(request, ui, session, revoked=revoked)


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@router.post("/keys")
async def create_key(
    request: Request,
    ui: UIDep,
    session: CheckedDep,
    name: Annotated[str, Form()] = "",
    tenant: Annotated[str, Form()] = "default",
    admin: Annotated[bool, Form()] = False,
    models: Annotated[list[str], Form()] = [],  # noqa: B006
    budget_usd: Annotated[str, Form()] = "",
    budget_period: Annotated[str, Form()] = "month",
    rpm: Annotated[str, Form()] = "",
    tpm: Annotated[str, Form()] = "",
) -> Response:
    form = {
        "name": name,
        "tenant": tenant,
        "admin": admin,
        "models": models,
        "budget_usd": budget_usd,
        "budget_period": budget_period,
        "rpm": rpm,
        "tpm": tpm,
    }
    try:
        limits = LimitSettings.model_validate(
            {
                "budget_usd": _number(budget_usd),
                "budget_period": budget_period,
                "rpm": _number(rpm),
                "tpm": _number(tpm),
            }
        )
        body = KeyCreate(
            name=name.strip(),
            tenant=tenant.strip() or "default",
            admin=admin,
            models=models or None,
            limits=None if limits.empty else limits,
        )
        info, secret = await ui.state.services.keys.create(
            session.principal,
            body.name,
            tenant=body.tenant,
            admin=body.admin,
            models=body.models,
            limits=body.limits,
        )
        created = info.to_dict() | {"key": secret}
    except ValueError as exc:  # pydantic's ValidationError, or a number that is not one
        message = (
            problem(exc)[1] if isinstance(exc, ValidationError) else "Budgets and limits must be numbers."
        )
        return await _page(request, ui, session, 400, error=message, form=form)
    except APIError as exc:
        if exc.status == 403:
            return ui.pages.render(request, "error.html", status=403, session=session, message=exc.message)
        return await _page(request, ui, session, exc.status, error=exc.message, form=form)
    login = f"{str(request.base_url).rstrip('/')}/login?key={created['key']}"
    return ui.pages.render(
        request, "key_created.html", session=session, page="keys", key=created, login=login
    )


@router.get("/keys/{name}/revoke")
async def confirm_revoke(request: Request, name: str, ui: UIDep, session: SessionDep) -> Response:
    try:
        require_admin(session.principal)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return ui.pages.render(request, "confirm_revoke.html", session=session, page="keys", name=name)


@router.post("/keys/{name}/revoke")
async def revoke(request: Request, name: str, ui: UIDep, session: CheckedDep) -> Response:
    try:
        await ui.state.services.keys.revoke(session.principal, name)
    except APIError as exc:
        return ui.pages.render(request, "error.html", status=exc.status, session=session, message=exc.message)
    return RedirectResponse("/keys?" + urlencode({"revoked": name}), status_code=303)
