"""FastAPI routes of Anthropic's Messages API; each hands over to its serving function. Errors on
these routes come in Anthropic's shape (``serve/http/errors.py``); the key may come as
``x-api-key`` (Anthropic's header) or ``Authorization: Bearer``; ``anthropic-version`` is accepted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lamina.serve.anthropic.protocol import (
    CountTokensRequest,
    ErrorResponse,
    MessageResponse,
    MessagesRequest,
    TokenCount,
)
from lamina.serve.anthropic.serving import count_tokens, messages
from lamina.serve.http.deps import (
    ContextDep,
    PrincipalDep,
    StateDep,
)
from lamina.serve.openai.serving import deployment_for

PREFIX = "/v1/messages"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "Invalid request",
        401: "Missing or invalid key",
        403: "The key may not use this model",
        404: "No such model",
        429: "Over a budget or rate limit, or the model's queue is full (see Retry-After)",
        502: "The model failed",
        503: "The model is unavailable",
    }.items()
}

router = APIRouter(prefix=PREFIX, tags=["Anthropic-compatible"])


@router.post(
    "",
    response_model=None,
    summary="Anthropic Messages: text, images, tool_use and tool_result; streamed as Anthropic's events",
    responses={
        200: {
            "model": MessageResponse,
            "description": "The message; with stream=true, Anthropic's server-sent events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
)
async def create_message(
    request: Request, body: MessagesRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> Response:
    dep = await deployment_for(state, principal, body.model)
    return await messages(request, ctx, state, principal, dep, body)


@router.post("/count_tokens", summary="Tokens of a Messages request's prompt", responses=ERRORS)
async def create_token_count(
    body: CountTokensRequest, state: StateDep, principal: PrincipalDep
) -> TokenCount:
    dep = await deployment_for(state, principal, body.model)
    return await count_tokens(dep, body)
