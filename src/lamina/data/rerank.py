"""The rerank seam: a second, slower judge that reorders the fused top hits (off unless configured).

The default implementation calls a ``/rerank`` endpoint in the shape vLLM, Jina and Cohere share
(``{model, query, documents}`` -> ``{results: [{index, relevance_score}]}``), so any cross-encoder
or LLM reranker served that way plugs in without code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from lamina.config import RerankSettings
from lamina.data.types import Hit
from lamina.errors import ModelUnavailable
from lamina.http import bearer_headers


class Reranker(Protocol):
    @property
    def name(self) -> str: ...

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, higher is better."""
        ...


class HttpReranker:
    def __init__(self, settings: RerankSettings, transport: httpx.BaseTransport | None = None) -> None:
        assert settings.base_url
        headers = bearer_headers(settings.api_key_env, "search.rerank.api_key_env")
        self._model = settings.model
        self._client = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=settings.timeout_s,
            transport=transport,
        )

    @property
    def name(self) -> str:
        return f"{self._model}/rerank"

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        body = {"model": self._model, "query": query, "documents": list(texts)}
        try:
            resp = self._client.post("/rerank", json=body)
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"rerank endpoint {self._client.base_url} unreachable: {exc}") from None
        if resp.status_code != 200:
            raise ModelUnavailable(
                f"rerank endpoint {self._client.base_url} answered {resp.status_code}: {resp.text[:200]}"
            )
        out = [0.0] * len(texts)
        for row in resp.json()["results"]:
            out[int(row["index"])] = float(row["relevance_score"])
        return out


def make_reranker(settings: RerankSettings) -> Reranker | None:
    return HttpReranker(settings) if settings.base_url else None


def rerank(reranker: Reranker, query: str, hits: Sequence[Hit], top: int) -> list[Hit]:
    """The first ``top`` hits reordered by the reranker (its score becomes ``score``); the rest follow."""
    head, tail = list(hits[:top]), list(hits[top:])
    scores = reranker.scores(query, [h.text for h in head])
    for hit, score in zip(head, scores, strict=True):
        hit.scores[reranker.name] = score
        hit.score = score
    return sorted(head, key=lambda h: h.score, reverse=True) + tail
