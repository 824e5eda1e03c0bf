"""FastAPI routes of the OpenAI-compatible API; each hands over to its serving function."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lamina.serve.context import RequestContext
from lamina.serve.http.deps import authenticated, request_context, server_state
from lamina.serve.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lamina.serve.openai.serving import RAG_PREFIX, deployment_for
from lamina.serve.openai.serving_embedding import embeddings, list_models
from lamina.serve.openai.serving_generate import generate
from lamina.serve.openai.serving_rag import grounded_chat
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
StateDep = Annotated[ServerState, Depends(server_state)]
PrincipalDep = Annotated[Principal, Depends(authenticated)]
ContextDep = Annotated[RequestContext, Depends(request_context)]


@router.get("/models", summary="Models, the embedder, and a rag:NAME model per collection")
async def models(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return await list_models(state, principal)


@router.post(
    "/chat/completions",
    response_model=None,
    summary="Chat; with `collection` (or a rag:NAME model), a cited answer",
)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> JSONResponse | StreamingResponse:
    collection = body.collection
    model = body.model
    if model.startswith(RAG_PREFIX):
        collection = collection or model.removeprefix(RAG_PREFIX)
        model = state.settings.serve.rag_models.get(collection, state.settings.default_model)
    dep = await deployment_for(state, principal, model)
    if collection:
        return await grounded_chat(request, ctx, state, principal, dep, body, collection)
    return await generate(request, ctx, state, principal, dep, body, "chat")


@router.post("/completions", response_model=None, summary="Text completion")
async def completions(
    request: Request, body: CompletionRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> JSONResponse | StreamingResponse:
    dep = await deployment_for(state, principal, body.model)
    return await generate(request, ctx, state, principal, dep, body, "completion")


@router.post("/embeddings", summary="Embeddings with the collection embedder")
async def embeddings_route(
    body: EmbeddingRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await embeddings(ctx, state, principal, body)
