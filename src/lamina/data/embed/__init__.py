"""Embedders behind one Protocol; ``make_embedder`` picks one from configuration."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from lamina.config import EmbeddingSettings
from lamina.data.embed.base import Embedder
from lamina.errors import ConfigError


def make_embedder(
    settings: EmbeddingSettings, cache_dir: Path | None = None, *, variant: str | None = None
) -> Embedder:
    """``cache_dir`` keeps derived model files (fused and int8 ONNX graphs) between runs.

    ``variant`` overrides ``settings.variant`` for the local ONNX model ("auto" means the default).
    A backend is one entry in ``BACKENDS``.
    """
    return BACKENDS[settings.backend](settings, cache_dir, variant)


def _onnx(settings: EmbeddingSettings, cache_dir: Path | None, variant: str | None) -> Embedder:
    from lamina.data.embed.onnx import DEFAULT_VARIANT, VARIANT_NAMES, OnnxMiniLM, Variant

    chosen = variant or settings.variant
    resolved: Variant = chosen if chosen in VARIANT_NAMES else DEFAULT_VARIANT
    return OnnxMiniLM(
        threads=settings.threads, batch_size=settings.batch_size, cache_dir=cache_dir, variant=resolved
    )


def _openai(settings: EmbeddingSettings, cache_dir: Path | None, variant: str | None) -> Embedder:
    from lamina.data.embed.openai import OpenAIEmbedder

    if not settings.base_url:
        raise ConfigError("embedding.base_url is required when embedding.backend = 'openai'")
    return OpenAIEmbedder(
        base_url=settings.base_url,
        model=settings.model,
        api_key_env=settings.api_key_env,
        dimensions=settings.dimensions,
        batch_size=settings.batch_size,
        timeout_s=settings.timeout_s,
        concurrency=settings.concurrency,
        max_retries=settings.max_retries,
    )


def _sentence_transformers(
    settings: EmbeddingSettings, cache_dir: Path | None, variant: str | None
) -> Embedder:
    from lamina.data.embed.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model=settings.model, batch_size=settings.batch_size)


BACKENDS: dict[str, Callable[[EmbeddingSettings, Path | None, str | None], Embedder]] = {
    "onnx": _onnx,
    "openai": _openai,
    "sentence-transformers": _sentence_transformers,
}


class Embedders:
    """The configured embedder, plus the other ONNX variant for collections built with it.

    With ``embedding.variant = "auto"`` a collection keeps the variant it was built with, so old
    collections stay searchable after the default changes; each variant is loaded once and shared
    (the server's tenants all use one ``Embedders``).
    """

    def __init__(
        self, settings: EmbeddingSettings, cache_dir: Path | None = None, default: Embedder | None = None
    ) -> None:
        self._settings = settings
        self._cache_dir = cache_dir
        self._fixed = default is not None
        self._default = default
        self._others: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> Embedder:
        with self._lock:
            if self._default is None:
                self._default = make_embedder(self._settings, self._cache_dir)
            return self._default

    def for_model(self, name: str) -> Embedder | None:
        """The embedder whose vectors a collection recorded as ``name`` holds, if this config allows it."""
        if name == self.default.name:
            return self.default
        if self._fixed or self._settings.backend != "onnx" or self._settings.variant != "auto":
            return None
        from lamina.data.embed.onnx import variant_of

        variant = variant_of(name)
        if variant is None:
            return None
        with self._lock:
            if name not in self._others:
                self._others[name] = make_embedder(self._settings, self._cache_dir, variant=variant)
            return self._others[name]

    def variant(self, variant: str) -> Embedder:
        """The local ONNX model as ``variant`` (int8, fp32): what ``lamina reindex`` can build with."""
        from lamina.data.embed.onnx import VARIANT_NAMES

        if self._settings.backend != "onnx":
            raise ConfigError(
                "embedding variants are the local ONNX model's; "
                f"embedding.backend is {self._settings.backend!r}"
            )
        if variant not in VARIANT_NAMES:
            raise ConfigError(f"unknown embedding variant {variant!r}; use one of {', '.join(VARIANT_NAMES)}")
        name = VARIANT_NAMES[variant]  # type: ignore[index]
        if name == self.default.name:
            return self.default
        with self._lock:
            if name not in self._others:
                self._others[name] = make_embedder(self._settings, self._cache_dir, variant=variant)
            return self._others[name]


__all__ = ["Embedder", "Embedders", "make_embedder"]
