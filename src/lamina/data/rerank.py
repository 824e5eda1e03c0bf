"""The rerank seam: a second, slower judge that reorders the fused top hits (off unless configured).

The default implementation calls a ``/rerank`` endpoint in the shape vLLM, Jina and Cohere share
(``{model, query, documents}`` -> ``{results: [{index, relevance_score}]}``), so any cross-encoder
or LLM reranker served that way plugs in without code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

import httpx

from lamina.backends import choose
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


class LexicalReranker:
    """In this process, no model: the share of the query's words each text contains. The seam's
    second implementation, for fast tests (``base_url = "memory://lexical"``); a weak judge."""

    name = "lexical/rerank"

    def __init__(self, settings: RerankSettings | None = None) -> None:
        pass

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        words = set(_WORD.findall(query.lower()))
        return [len(words & set(_WORD.findall(t.lower()))) / max(1, len(words)) for t in texts]


_WORD = re.compile(r"\w{3,}")
RERANKERS: dict[str, Callable[[RerankSettings], Reranker]] = {
    "http": HttpReranker,
    "https": HttpReranker,
    "memory": LexicalReranker,
}


def make_reranker(settings: RerankSettings) -> Reranker | None:
    """The reranker ``search.rerank`` names, by its URL's scheme; ``None`` when it names none."""
    if not settings.base_url:
        return None
    scheme = settings.base_url.split("://", 1)[0].lower()
    return choose(RERANKERS, scheme, "scheme", context="search.rerank.base_url")(settings)


def rerank(reranker: Reranker, query: str, hits: Sequence[Hit], top: int) -> list[Hit]:
    """The first ``top`` hits reordered by the reranker (its score becomes ``score``); the rest follow."""
    head, tail = list(hits[:top]), list(hits[top:])
    scores = reranker.scores(query, [h.text for h in head])
    for hit, score in zip(head, scores, strict=True):
        hit.scores[reranker.name] = score
        hit.score = score
    return sorted(head, key=lambda h: h.score, reverse=True) + tail
