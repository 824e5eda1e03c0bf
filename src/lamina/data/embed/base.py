"""The embedder seam: anything that turns texts into unit-length vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """``name`` and ``dim`` are recorded with a collection; vectors of two models never mix."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalized float32 row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the model would see them (before truncation), for chunk budgets."""
        ...


def normalize(vectors: npt.NDArray[np.floating]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (vectors / norms).astype(np.float32)
    return out
