"""Who is signed in: the key kept in the HttpOnly session cookie, checked by the server's own ``auth``.

A page needs a session (else: the login page); a form also needs the session's CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from lamina.serve.errors import APIError
from lamina.serve.http.app import SESSION_COOKIE
from lamina.serve.policy.keys import Principal
from lamina.ui.context import UI, ui_of


class LoginRequired(Exception):
    """No valid session: pages go to the login page, htmx requests are told to."""


@dataclass(frozen=True)
class Session:
    principal: Principal
    key: str  # the session's API key: used to call the API on the user's behalf, never rendered
    csrf: str

    @property
    def owner(self) -> str:
        """Whose conversations: key names are unique for good (a revoked name is never reused)."""
        return self.principal.key_name


async def current_session(request: Request, ui: Annotated[UI, Depends(ui_of)]) -> Session:
    key = request.cookies.get(SESSION_COOKIE, "")
    if ui.state.auth.enabled and not key:
        raise LoginRequired
    try:
        principal = await ui.state.auth(request)
    except APIError:
        raise LoginRequired from None
    return Session(principal, key, ui.csrf.token(key))


async def checked_session(request: Request, ui: Annotated[UI, Depends(ui_of)]) -> Session:
    """The session of a state-changing request, which must carry its CSRF token (else 403)."""
    session = await current_session(request, ui)
    await ui.csrf.check(request, session.key)
    return session


UIDep = Annotated[UI, Depends(ui_of)]
SessionDep = Annotated[Session, Depends(current_session)]
CheckedDep = Annotated[Session, Depends(checked_session)]
