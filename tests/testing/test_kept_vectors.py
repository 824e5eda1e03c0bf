"""The SciFact tests' embedder keeps its vectors between runs, and only while they are still right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lamina.data.embed
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.testing import kept_vectors
from lamina.testing.kept_vectors import KeptVectors

TEXTS = ["Aspirin lowers the risk of a second heart attack.", "A cat sits on the mat.", ""]


def test_a_later_run_embeds_nothing_it_kept_and_gets_the_same_vectors(
    tmp_path: Path, embedder: OnnxMiniLM
) -> None:
    first = KeptVectors(embedder, tmp_path)
    made = first.embed(TEXTS)
    assert first.embedded == 3 and np.array_equal(made, embedder.embed(TEXTS))
    later = KeptVectors(embedder, tmp_path)  # another run: a new object over the same folder
    assert np.array_equal(later.embed(TEXTS[::-1]), made[::-1]) and later.embedded == 0
    assert np.array_equal(later.embed(["new text", TEXTS[0]])[1], made[0]) and later.embedded == 1
    assert (later.name, later.dim, later.max_tokens) == (embedder.name, embedder.dim, embedder.max_tokens)


def test_another_recipe_embeds_again(
    tmp_path: Path, embedder: OnnxMiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    KeptVectors(embedder, tmp_path).embed(TEXTS)
    monkeypatch.setattr(kept_vectors, "INT8_GRAPH", "int8r-next")  # as a new quantization recipe would
    again = KeptVectors(embedder, tmp_path)
    again.embed(TEXTS)
    assert again.embedded == 3 and len(list(tmp_path.glob("vectors-*.npz"))) == 1  # the old one goes


def test_the_recipe_names_the_embedders_source(
    embedder: OnnxMiniLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = kept_vectors.recipe(embedder)
    (tmp_path / "onnx.py").write_text("# the embedder's code")
    monkeypatch.setattr(lamina.data.embed, "__file__", str(tmp_path / "__init__.py"))
    elsewhere = kept_vectors.recipe(embedder)
    (tmp_path / "onnx.py").write_text("# the embedder's code, changed")
    assert installed != elsewhere != kept_vectors.recipe(embedder)


def test_a_damaged_file_is_embedded_again_and_rewritten(tmp_path: Path, embedder: OnnxMiniLM) -> None:
    made = KeptVectors(embedder, tmp_path).embed(TEXTS)
    (kept,) = tmp_path.glob("vectors-*.npz")
    kept.write_bytes(kept.read_bytes()[:100])  # a run killed by a full disk, say
    again = KeptVectors(embedder, tmp_path)
    assert np.array_equal(again.embed(TEXTS), made) and again.embedded == 3
    assert KeptVectors(embedder, tmp_path).embed(TEXTS).shape == (3, embedder.dim)
