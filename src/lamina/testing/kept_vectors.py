"""An embedder that keeps the vectors it made on disk, so a test run reuses the last run's.

The SciFact sample's ~700 chunks cost ~25 s of one core to embed: a fifth of the in-process tests'
time, for vectors that are the same every run until something that makes them changes. A text's
vector is kept under a key that names all of that: the embedder's name, the model's checksum and
derived-graph recipe, ONNX Runtime's and tokenizers' versions, and the source of
``lamina.data.embed``. Any change to one of them is another key, so the real embedder embeds again.
A text not seen before is embedded by the real embedder, then kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

import lamina.data.embed
from lamina.data.embed.base import Vectors
from lamina.data.embed.onnx import INT8_GRAPH, MODEL_SHA256, OnnxMiniLM
from lamina.data.embed.tokenizer import TOKENIZER_SHA256


def recipe(embedder: OnnxMiniLM) -> str:
    """A digest of everything that decides the vector ``embedder`` gives a text."""
    package = Path(lamina.data.embed.__file__).parent
    parts = [embedder.name, MODEL_SHA256, INT8_GRAPH, TOKENIZER_SHA256]
    parts += [f"{dist}=={metadata.version(dist)}" for dist in ("onnxruntime", "tokenizers", "numpy")]
    parts += [f"{p.name}:{p.read_text()}" for p in sorted(package.glob("*.py"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class KeptVectors:
    """``embedder`` with its vectors kept in ``folder`` between runs (the current recipe's only).

    The int8 default runs each text alone, so a text's vector never depends on the texts embedded
    with it, and a kept vector is the one the embedder would give now.
    """

    def __init__(self, embedder: OnnxMiniLM, folder: Path) -> None:
        self._embedder = embedder
        self._path = folder / f"vectors-{recipe(embedder)}.npz"
        self._kept: dict[str, Vectors] = {}
        unreadable = (OSError, ValueError, KeyError, zipfile.BadZipFile)  # none yet, or damaged
        with contextlib.suppress(*unreadable), np.load(self._path) as saved:  # (embedded again, rewritten)
            self._kept = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
        self.embedded = 0  # texts this run had to embed (not kept from an earlier one)

    @property
    def name(self) -> str:
        return self._embedder.name

    @property
    def dim(self) -> int:
        return self._embedder.dim

    @property
    def max_tokens(self) -> int:
        return self._embedder.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._embedder.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._kept}
        if missing:
            made = self._embedder.embed(list(missing.values()))
            self._kept.update(zip(missing, made, strict=True))
            self.embedded += len(missing)
            self._save()
        out: Vectors = np.stack([self._kept[k] for k in keys]) if keys else self._embedder.embed([])
        return out

    def _save(self) -> None:
        """Written whole, then renamed: a run killed mid-write leaves the last complete file."""
        partial = self._path.with_name(f"{self._path.stem}.{os.getpid()}.partial.npz")
        keys = np.array(list(self._kept))
        np.savez(partial, keys=keys, vectors=np.stack(list(self._kept.values())))
        os.replace(partial, self._path)
        for stale in self._path.parent.glob("vectors-*.npz"):  # an earlier recipe's: never read again
            if stale != self._path and ".partial." not in stale.name:
                stale.unlink(missing_ok=True)
