"""The int8 and fp32 variants of the local embedder: close vectors, never mixed in one collection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina.config import load_settings
from lamina.data.collection import Workspace
from lamina.data.embed import Embedders
from lamina.data.embed.onnx import VARIANT_NAMES, OnnxMiniLM
from lamina.errors import EmbeddingMismatch
from tests.conftest import SCIFACT


def _workspace(tmp_path: Path, model_cache: Path, variant: str) -> Workspace:
    settings = load_settings(data_dir=tmp_path / "data", embedding={"variant": variant})
    return Workspace(settings, embedders=Embedders(settings.embedding, model_cache))


def test_int8_vectors_are_close_to_fp32_on_real_abstracts(model_cache: Path, embedder: OnnxMiniLM) -> None:
    with (SCIFACT / "corpus.jsonl").open() as fh:
        texts = [f"{d['title']}\n{d['text']}" for d in map(json.loads, list(fh)[:64])]
    fp32 = OnnxMiniLM(cache_dir=model_cache, variant="fp32").embed(texts)
    int8 = embedder.embed(texts)
    assert embedder.variant == "int8" and embedder.graph == "int8"
    cosine = (fp32 * int8).sum(axis=1)
    print(
        f"int8 vs fp32 cosine over {len(texts)} SciFact abstracts: "
        f"min {cosine.min():.4f}, mean {cosine.mean():.4f}"
    )
    assert cosine.min() > 0.98 and cosine.mean() > 0.99
    # close, but not the same vectors: that is why the variants have different names
    assert np.abs(fp32 - int8).max() > 1e-4 and VARIANT_NAMES["int8"] != VARIANT_NAMES["fp32"]


def test_a_collection_refuses_the_other_variant_with_the_rebuild_hint(
    tmp_path: Path, model_cache: Path
) -> None:
    int8_ws = _workspace(tmp_path, model_cache, "int8")
    int8_ws.collection("kb", create=True).ingest_documents([])
    with pytest.raises(EmbeddingMismatch, match=r"onnx-int8-dynamic.*onnx-fp32.*lamina reindex -c kb"):
        _workspace(tmp_path, model_cache, "fp32").collection("kb")


def test_auto_keeps_each_collection_on_the_variant_it_was_built_with(
    tmp_path: Path, model_cache: Path
) -> None:
    sample_docs = Path(lamina.__file__).parent / "samples"

    old = _workspace(tmp_path, model_cache, "fp32").collection("old", create=True)
    old.ingest([str(sample_docs)])
    auto = _workspace(tmp_path, model_cache, "auto")
    assert auto.embedder.name == VARIANT_NAMES["int8"]  # new collections get the default
    reopened = auto.collection("old")
    assert reopened.embedder.name == VARIANT_NAMES["fp32"]
    assert reopened.search("refund", k=1, mode="dense")  # the query is embedded like the stored vectors
    assert auto.collection("new", create=True).embedder.name == VARIANT_NAMES["int8"]
    assert reopened.ingest([str(sample_docs)]).ingested == 0  # nothing looks changed: same pipeline


def test_collections_recorded_under_the_old_name_are_fp32(tmp_path: Path, model_cache: Path) -> None:
    ws = _workspace(tmp_path, model_cache, "auto")
    ws.registry.create_collection("legacy", "all-MiniLM-L6-v2/onnx-int8", 384)
    ws.registry.close()
    again = _workspace(tmp_path, model_cache, "auto")
    assert again.collection("legacy").embedder.name == VARIANT_NAMES["fp32"]
