"""Signing in (the printed ``/login?key=…`` link, or the form) and out.

The session cookie holds the key itself (HttpOnly, SameSite=Strict), as the API's ``auth`` expects. A
successful link sign-in answers a page that moves on by itself rather than a redirect: a redirect that
began on another site (a chat message, a mail) would not carry a SameSite=Strict cookie to the next page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from lamina.serve.http.app import SESSION_COOKIE
from lamina.serve.policy.keys import KEY_PREFIX, Principal
from lamina.ui.csrf import LOGIN_COOKIE, login_token_valid, new_login_token
from lamina.ui.session import CheckedDep, UIDep

router = APIRouter(include_in_schema=False)
BAD_KEY = "That key is not valid: it may be mistyped or revoked. Ask an admin for a new one."
NO_PREFIX = "Lamina keys start with “lam_”. Paste the whole key."
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}  # never leak a key in a URL


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(
    request: Request, ui: UIDep, *, error: str = "", status: int = 200, next_: str = "/", notice: str = ""
) -> Response:
    token = new_login_token()
    resp = ui.pages.render(
        request,
        "login.html",
        status=status,
        headers=PRIVATE,
        login_csrf=token,
        error=error,
        notice=notice,
        next=safe_next(next_),
    )
    resp.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login", secure=_https(request)
    )
    return resp


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _signed_in(
    request: Request, ui: UIDep, key: str, principal: Principal, next_: str, *, via_link: bool
) -> Response:
    target = safe_next(next_)
    if via_link:
        resp: Response = ui.pages.render(
            request, "signed_in.html", headers=PRIVATE, principal=principal, next=target
        )
    else:
        resp = RedirectResponse(target, status_code=303, headers=PRIVATE)
    resp.set_cookie(SESSION_COOKIE, key, httponly=True, samesite="strict", secure=_https(request))
    resp.delete_cookie(LOGIN_COOKIE, path="/login")
    return resp


@router.get("/login")
async def login(
    request: Request, ui: UIDep, key: str = "", next: str = "/", signed_out: bool = False
) -> Response:
    if not ui.state.auth.enabled:  # --no-auth on loopback: everyone is signed in
        return RedirectResponse(safe_next(next), status_code=303)
    if not key:
        notice = "You are signed out." if signed_out else ""
        return _login_page(request, ui, next_=next, notice=notice)
    principal = await ui.state.auth.verify(key)
    if principal is None:
        return _login_page(request, ui, error=BAD_KEY, status=401, next_=next)
    return _signed_in(request, ui, key, principal, next, via_link=True)


@router.post("/login")
async def login_form(
    request: Request,
    ui: UIDep,
    key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    if not login_token_valid(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _login_page(
            request, ui, status=403, next_=next, error="The form expired. Paste your key and sign in again."
        )
    key = key.strip()
    principal = await ui.state.auth.verify(key) if key else None
    if principal is None:
        error = BAD_KEY if not key or key.startswith(KEY_PREFIX) else NO_PREFIX
        return _login_page(request, ui, error=error, status=401, next_=next)
    return _signed_in(request, ui, key, principal, next, via_link=False)


@router.post("/logout")
async def logout(session: CheckedDep) -> Response:
    resp = RedirectResponse("/login?signed_out=1", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp
