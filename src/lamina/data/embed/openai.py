"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, Ollama, TEI, OpenAI).

A GPU embedder is kept busy by having ``concurrency`` requests in flight; a failed request
(connection error, 429, 5xx) is retried with the model layer's one policy (``models/retry.py``:
exponential backoff with full jitter, or ``Retry-After``) before the batch fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import httpx
import numpy as np

from lamina.data.embed.base import Vectors, normalize
from lamina.errors import ModelUnavailable
from lamina.http import bearer_headers
from lamina.models.retry import backoff, parse_retry_after, retryable


class OpenAIEmbedder:
    """Token counts use the local MiniLM tokenizer as an estimate: remote APIs expose none.

    It pickles as its settings (a Ray actor opens its own connections).
    """

    remote = True  # the local engine overlaps the next batch's chunking with these requests

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
        concurrency: int = 4,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._model = model
        self._base_url = base_url.rstrip("/")
        self._batch_size = batch_size
        self._dim = dimensions
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._max_retries = max_retries
        self._transport = transport
        self._headers = bearer_headers(api_key_env, "embedding.api_key_env")
        self._lock = threading.Lock()
        self.max_tokens = max_tokens

    def __getstate__(self) -> dict[str, Any]:
        if self._transport is not None:
            raise TypeError("an OpenAIEmbedder with a custom transport cannot be sent to another process")
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_pool", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self._model}/openai"

    @cached_property
    def _client(self) -> httpx.Client:
        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency)
        return httpx.Client(
            base_url=self._base_url,
            headers=self._headers,
            timeout=self._timeout_s,
            transport=self._transport,
            limits=limits,
        )

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self._concurrency, thread_name_prefix="lamina-embed")

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
        """One request, retried on what a busy or restarting server answers."""
        with self._lock:
            client = self._client
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                resp = client.post("/embeddings", json={"model": self._model, "input": list(texts)})
            except httpx.HTTPError as exc:
                if last:
                    raise ModelUnavailable(
                        f"embedding endpoint {self._base_url} unreachable after {attempt + 1} tries: {exc}"
                    ) from None
                self._sleep(attempt, None)
                continue
            if resp.status_code == 200:
                rows = sorted(resp.json()["data"], key=lambda d: d["index"])
                return normalize(np.asarray([r["embedding"] for r in rows], dtype=np.float32))
            if not retryable(resp.status_code) or last:
                raise ModelUnavailable(
                    f"embedding endpoint {self._base_url} answered {resp.status_code}: {resp.text[:200]}"
                )
            self._sleep(attempt, resp.headers.get("retry-after"))
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        time.sleep(backoff(attempt, parse_retry_after(retry_after)))

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [texts[i : i + self._batch_size] for i in range(0, len(texts), self._batch_size)]
        if len(parts) == 1 or self._concurrency == 1:
            return np.vstack([self._request(p) for p in parts])
        with self._lock:
            pool = self._pool
        return np.vstack(list(pool.map(self._request, parts)))
