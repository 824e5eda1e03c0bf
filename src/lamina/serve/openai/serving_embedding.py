"""``/v1/embeddings`` with the collection embedder, and ``/v1/models``."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError, bad_request
from lamina.serve.openai.protocol import (
    EmbeddingData,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
)
from lamina.serve.openai.serving import RAG_PREFIX, rag_model
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState
from lamina.telemetry import INPUT_TOKENS, OPERATION, REQUEST_MODEL, tracer

CREATED = 1_700_000_000  # models have no creation time here; OpenAI's schema wants a number


def embedding_names(state: ServerState) -> list[str]:
    """The embedder answers to its full name (with variant) and to the configured model name."""
    return list(dict.fromkeys([state.tenants.embedder.name, state.settings.embedding.model]))


async def embeddings(
    ctx: RequestContext, state: ServerState, principal: Principal, body: EmbeddingRequest
) -> EmbeddingList:
    names = embedding_names(state)
    if body.model in names and not principal.may_use(body.model):
        raise APIError(403, f"this key may not use model {body.model!r}", "permission_error", param="model")
    if body.model not in names:
        raise APIError(
            404,
            f"embedding model {body.model!r} does not exist; use {names[0]!r}",
            "not_found_error",
            param="model",
            code="model_not_found",
        )
    embedder = state.tenants.embedder
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise bad_request(
            f"{body.model} gives {embedder.dim}-d vectors; dimensions cannot change", param="dimensions"
        )
    texts = body.texts
    counts = await asyncio.to_thread(embedder.count_tokens, texts)
    tokens = sum(min(n, embedder.max_tokens) for n in counts)
    cost = tokens * state.settings.embedding.price_per_mtok / 1_000_000
    await state.limiter.admit(principal, ctx, cost_usd=cost, tokens=tokens)
    with tracer.start_as_current_span(
        f"embeddings {body.model}",
        attributes={OPERATION: "embeddings", REQUEST_MODEL: body.model, INPUT_TOKENS: tokens},
    ):
        vectors = await asyncio.to_thread(embedder.embed, texts)
    ctx.model = body.model
    ctx.embedding_tokens = tokens
    return EmbeddingList(
        data=[
            EmbeddingData(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(vectors)
        ],
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]


async def list_models(state: ServerState, principal: Principal) -> ModelList:
    """Chat models, the embedder, and one ``rag:NAME`` model per collection the key may read."""
    data: list[ModelCard] = []
    for name, spec in state.settings.models.items():
        if principal.may_use(name):
            kind = "chat" if spec.chat else "completion"
            data.append(_model(name, kind, default=name == state.settings.default_model))
    for name in embedding_names(state)[:1]:
        if principal.may_use(name):
            data.append(_model(name, "embedding"))
    infos = await asyncio.to_thread(state.tenants.workspace(principal.tenant).collections)
    data += [
        _model(RAG_PREFIX + c.name, "rag", collection=c.name)
        for c in infos
        if principal.may_use(rag_model(state, c.name))
    ]
    return ModelList(data=data)


def _model(model_id: str, kind: str, **extra: Any) -> ModelCard:
    return ModelCard(id=model_id, created=CREATED, kind=kind, **extra)
