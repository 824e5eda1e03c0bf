"""Where a grounded answer can come from without calling the model: the exact-match cache, then
(when ``serve.semantic_cache`` is on) an earlier answer to a question of the same meaning.

Both are keyed on the tenant, the reader's groups and the metadata filter, the model, the sampling
parameters, the collection and its store version, so neither ever serves another tenant's or
another reader's answer, or one about documents that have since changed. Only first questions
use the semantic cache: a follow-up's meaning depends on the turns before it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamina.data.collection import Collection
from lamina.engine.deployment import Deployment
from lamina.models.types import message_text
from lamina.serve.openai.protocol import ChatCompletionRequest
from lamina.serve.openai.streaming import CACHE_HEADER
from lamina.serve.policy.cache import cache_key
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import where_for
from lamina.serve.state import ServerState

SIMILARITY_HEADER = "x-lamina-cache-similarity"


@dataclass
class CachedAnswer:
    """The lookup's outcome: a hit (with the headers that say so), or where to store the answer."""

    hit: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    key: str | None = None
    partition: str | None = None
    vector: np.ndarray | None = None
    question: str = ""

    def store(self, state: ServerState, value: dict[str, Any]) -> None:
        if self.key is not None and state.cache is not None:
            state.cache.put(self.key, value)
        if self.partition is not None and self.vector is not None and state.similar is not None:
            state.similar.put(self.partition, self.vector, self.question, value)


async def lookup(
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ChatCompletionRequest,
    coll: Collection,
    question: str,
    first_question: bool,
) -> CachedAnswer:
    if state.cache is None and state.similar is None:
        return CachedAnswer(headers={})
    # every write bumps the store's version, and a switch changes the build: no stale answers
    version = f"{coll.key}@{await asyncio.to_thread(coll.store.version)}"
    params = _cache_params(body)
    readable = where_for(principal, filter=body.filter).key()  # groups and filter: what was searched

    def key_of(kind: str, p: dict[str, Any]) -> str | None:
        return cache_key(
            principal.tenant,
            dep.name,
            kind,
            p,
            dep.spec.temperature,
            collection=coll.name,
            k=body.k,
            version=version,
            readable=readable,
        )

    found = CachedAnswer(headers={})
    if state.cache is not None:
        found.key = key_of("rag", params)
        hit = state.cache.get(found.key) if found.key is not None else None
        if hit is not None:
            return CachedAnswer(hit, {CACHE_HEADER: "hit"})
    if state.similar is not None and first_question:
        found.partition = key_of("rag-similar", {**params, "messages": params["messages"][:-1]})
        if found.partition is not None:
            vectors = await asyncio.to_thread(coll.embedder.embed, [question])
            found.vector, found.question = np.asarray(vectors[0], dtype=np.float32), question
            similar = state.similar.get(found.partition, found.vector, question)
            if similar is not None:
                value, similarity = similar
                return CachedAnswer(value, {CACHE_HEADER: "hit", SIMILARITY_HEADER: f"{similarity:.4f}"})
    if found.key is not None or found.partition is not None:
        found.headers = {CACHE_HEADER: "miss"}
    return found


def _cache_params(body: ChatCompletionRequest) -> dict[str, Any]:
    """What of a grounded request changes its answer, besides the collection and its version."""
    return {
        "messages": [[m.role, message_text(m.as_message())] for m in body.messages],
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "max_tokens": body.max_tokens or body.max_completion_tokens,
    }
