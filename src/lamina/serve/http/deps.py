"""FastAPI dependencies shared by every router: the server state and the calling principal."""

from __future__ import annotations

from fastapi import Request

from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.lamina
    return state


async def authenticated(request: Request) -> Principal:
    return await server_state(request).auth(request)
