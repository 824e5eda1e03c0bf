"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, Ollama, TEI, OpenAI)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import httpx
import numpy as np

from lamina.data.embed.base import Vectors, normalize
from lamina.errors import ModelUnavailable
from lamina.http import bearer_headers


class OpenAIEmbedder:
    """Token counts use the local MiniLM tokenizer as an estimate: remote APIs expose none."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        max_tokens: int = 510,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._model = model
        self._batch_size = batch_size
        self._dim = dimensions
        self.max_tokens = max_tokens
        headers = bearer_headers(api_key_env, "embedding.api_key_env")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    @property
    def name(self) -> str:
        return f"{self._model}/openai"

    @cached_property
    def _probed_dim(self) -> int:
        return int(self._request(["dimension probe"]).shape[1])

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self._probed_dim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        from lamina.data.embed.tokenizer import minilm_tokenizer

        return [len(e.ids) for e in minilm_tokenizer().encode_batch(list(texts), add_special_tokens=False)]

    def _request(self, texts: Sequence[str]) -> Vectors:
        try:
            resp = self._client.post("/embeddings", json={"model": self._model, "input": list(texts)})
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"embedding endpoint {self._client.base_url} unreachable: {exc}") from None
        if resp.status_code != 200:
            raise ModelUnavailable(
                f"embedding endpoint {self._client.base_url} answered {resp.status_code}: {resp.text[:200]}"
            )
        rows = sorted(resp.json()["data"], key=lambda d: d["index"])
        return normalize(np.asarray([r["embedding"] for r in rows], dtype=np.float32))

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            self._request(texts[i : i + self._batch_size]) for i in range(0, len(texts), self._batch_size)
        ]
        return np.vstack(parts)
