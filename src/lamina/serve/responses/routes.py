"""FastAPI routes of OpenAI's Responses API; each hands over to its serving function. Errors come in
OpenAI's shape, as on every ``/v1`` route."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lamina.serve.http.deps import (
    ContextDep,
    PrincipalDep,
    StateDep,
)
from lamina.serve.openai.routes import ERRORS
from lamina.serve.openai.serving import deployment_for
from lamina.serve.responses import serving
from lamina.serve.responses.protocol import DeletedResponse, ResponseObject, ResponsesRequest

router = APIRouter(prefix="/v1/responses", tags=["OpenAI Responses"])


@router.post(
    "",
    response_model=None,
    summary="A response: input items in, output items out; function tools, file_search over a collection",
    responses={
        200: {
            "model": ResponseObject,
            "description": "The response; with stream=true, the Responses API's server-sent events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
)
async def create_response(
    request: Request, body: ResponsesRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> Response:
    dep = await deployment_for(state, principal, body.model)
    return await serving.create(request, ctx, state, principal, dep, body)


@router.get(
    "/{response_id}", summary="A stored response (store=true), within its retention", responses=ERRORS
)
async def get_response(response_id: str, state: StateDep, principal: PrincipalDep) -> ResponseObject:
    return ResponseObject.model_validate(await serving.stored(state, principal, response_id))


@router.delete("/{response_id}", summary="Delete a stored response", responses=ERRORS)
async def delete_response(response_id: str, state: StateDep, principal: PrincipalDep) -> DeletedResponse:
    await serving.delete(state, principal, response_id)
    return DeletedResponse(id=response_id)
