"""Embedders behind one Protocol; ``make_embedder`` picks one from configuration."""

from __future__ import annotations

from pathlib import Path

from lamina.config import EmbeddingSettings
from lamina.data.embed.base import Embedder
from lamina.errors import ConfigError


def make_embedder(settings: EmbeddingSettings, cache_dir: Path | None = None) -> Embedder:
    """``cache_dir`` keeps derived model files (the fused ONNX graph) between runs."""
    if settings.backend == "onnx":
        from lamina.data.embed.onnx import OnnxMiniLM

        return OnnxMiniLM(threads=settings.threads, batch_size=settings.batch_size, cache_dir=cache_dir)
    if settings.backend == "openai":
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
        )
    from lamina.data.embed.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model=settings.model, batch_size=settings.batch_size)


__all__ = ["Embedder", "make_embedder"]
