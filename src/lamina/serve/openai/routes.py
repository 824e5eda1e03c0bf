"""FastAPI routes of the OpenAI-compatible API; each hands over to its serving function."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from lamina.serve.errors import bad_request
from lamina.serve.http.deps import (
    ContextDep,
    PrincipalDep,
    StateDep,
)
from lamina.serve.openai.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ErrorResponse,
    ModelList,
)
from lamina.serve.openai.serving import RAG_PREFIX, deployment_for, rag_model
from lamina.serve.openai.serving_embedding import embeddings, list_models
from lamina.serve.openai.serving_generate import generate
from lamina.serve.openai.serving_rag import grounded_chat

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "Invalid request",
        401: "Missing or invalid key",
        403: "The key may not use this model",
        404: "No such model or collection",
        429: "Over a budget or rate limit, or the model's queue is full (see Retry-After)",
        502: "The model failed",
        503: "The model is unavailable",
    }.items()
}


def _generated(model: type[BaseModel], chunk: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """A generation's 200: the whole response as JSON, or with ``stream`` its chunks as SSE."""
    return {
        200: {
            "model": model,
            "description": f"{model.__name__}; with stream=true, server-sent events of {chunk.__name__}",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    }


router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


@router.get("/models", summary="Models, the embedder, and a rag:NAME model per collection", responses=ERRORS)
async def models(state: StateDep, principal: PrincipalDep) -> ModelList:
    return await list_models(state, principal)


@router.post(
    "/chat/completions",
    response_model=None,
    summary="Chat; with `collection` (or a rag:NAME model), a cited answer",
    responses=_generated(ChatCompletion, ChatCompletionChunk),
)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> Response:
    collection = body.collection
    model = body.model
    if model.startswith(RAG_PREFIX):
        collection = collection or model.removeprefix(RAG_PREFIX)
        model = rag_model(state, collection)
    if body.filter is not None and not collection:
        raise bad_request("filter narrows a collection's documents: send it with collection", param="filter")
    dep = await deployment_for(state, principal, model)
    if collection:
        return await grounded_chat(request, ctx, state, principal, dep, body, collection)
    return await generate(request, ctx, state, principal, dep, body)


@router.post(
    "/completions",
    response_model=None,
    summary="Text completion",
    responses=_generated(Completion, Completion),
)
async def completions(
    request: Request, body: CompletionRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> Response:
    dep = await deployment_for(state, principal, body.model)
    return await generate(request, ctx, state, principal, dep, body)


@router.post("/embeddings", summary="Embeddings with the collection embedder", responses=ERRORS)
async def embeddings_route(
    body: EmbeddingRequest, ctx: ContextDep, state: StateDep, principal: PrincipalDep
) -> EmbeddingList:
    return await embeddings(ctx, state, principal, body)
