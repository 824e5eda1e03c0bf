"""FastAPI dependencies shared by every router: the server state, the request's context, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from lamina.serve.context import RequestContext
from lamina.serve.http.middleware import context_of
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a
# thread hop per request that the gateway benchmark shows.


async def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.lamina
    return state


async def request_context(request: Request) -> RequestContext:
    """The typed context the gateway middleware made for this request."""
    ctx = context_of(request.scope)
    if ctx is None:  # only an app built without its middleware: a programming error
        raise RuntimeError("no request context: build the app with lamina.serve.http.app.build_app")
    return ctx


async def authenticated(request: Request) -> Principal:
    return await (await server_state(request)).auth(request)


# what a route declares it needs: the server, the caller, the request's context
StateDep = Annotated[ServerState, Depends(server_state)]
PrincipalDep = Annotated[Principal, Depends(authenticated)]
ContextDep = Annotated[RequestContext, Depends(request_context)]
TenantQuery = Annotated[str | None, Query(description="Admins: act for this tenant.")]
