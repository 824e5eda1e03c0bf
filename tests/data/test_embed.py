"""Embedders: the default ONNX model (checksums, truncation, quality) and the HTTP backend."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lamina.config import EmbeddingSettings, load_settings
from lamina.data.collection import Workspace
from lamina.data.embed import make_embedder
from lamina.data.embed.onnx import OnnxMiniLM, model_path
from lamina.data.embed.openai import OpenAIEmbedder
from lamina.errors import ConfigError, EmbeddingMismatch, ModelUnavailable
from lamina.testing.json_http import JsonHandler, serving


def test_vectors_are_normalized_and_meaningful(embedder: OnnxMiniLM) -> None:
    v = embedder.embed(
        ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly tax filing rules."]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_batching_by_length_keeps_order(embedder: OnnxMiniLM) -> None:
    texts = ["short", "a much longer sentence " * 20, "medium length text here"]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


def test_long_text_is_cut_at_256_not_128(embedder: OnnxMiniLM) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    ids = embedder.token_ids([words])[0]
    assert len(ids) == 256 and ids[-1] == 102  # [SEP] kept last
    assert embedder.count_tokens([words])[0] > 256  # counting never truncates
    assert embedder.embed([words]).shape == (1, 384)


def test_fused_graph_gives_the_same_vectors_and_is_cached(tmp_path: Path) -> None:
    texts = ["The fused graph must agree with the original.", "word " * 300]
    original = OnnxMiniLM(variant="fp32")
    fused = OnnxMiniLM(cache_dir=tmp_path, variant="fp32")
    assert np.abs(fused.embed(texts) - original.embed(texts)).max() < 1e-4
    assert (fused.graph, original.graph) == ("fused", "original")
    cached = next(tmp_path.glob("minilm-fused-*.onnx"))
    built_at = cached.stat().st_mtime_ns
    again = OnnxMiniLM(cache_dir=tmp_path, variant="fp32")
    again.embed(["x"])
    assert again.graph == "fused" and cached.stat().st_mtime_ns == built_at  # reused, not rebuilt

    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")  # a damaged cache is rebuilt, not trusted
    rebuilt = OnnxMiniLM(cache_dir=tmp_path, variant="fp32")
    assert np.abs(rebuilt.embed(texts) - original.embed(texts)).max() < 1e-4
    assert rebuilt.graph == "fused"


def test_embedders_of_one_graph_share_its_loaded_session(model_cache: Path) -> None:
    first, second = OnnxMiniLM(cache_dir=model_cache), OnnxMiniLM(cache_dir=model_cache)
    assert first._session is second._session  # loaded once per process
    wider = OnnxMiniLM(cache_dir=model_cache, threads=first._threads + 1)
    assert wider._session is not first._session  # a session's thread pool is part of what it is
    assert np.allclose(wider.embed(["same model"]), first.embed(["same model"]), atol=1e-6)


def test_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    shutil.copy(model_path(), bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ModelUnavailable, match="sha256"):
        OnnxMiniLM(path=bad).embed(["x"])
    with pytest.raises(ModelUnavailable, match="not found"):
        OnnxMiniLM(path=tmp_path / "missing.onnx").embed(["x"])


class _EmbeddingsHandler(JsonHandler):
    """A real /v1/embeddings server on loopback, computing real vectors with the ONNX model."""

    model: OnnxMiniLM

    def do_POST(self) -> None:
        body = self.read_json()
        if self.path != "/v1/embeddings" or self.headers.get("Authorization") != "Bearer sk-test":
            self.send_response(401)
            self.end_headers()
            return
        vectors = self.model.embed(body["input"])
        payload = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)
            ],
        }
        self.reply(payload)


@pytest.fixture
def embeddings_server(embedder: OnnxMiniLM) -> Iterator[str]:
    with serving(type("H", (_EmbeddingsHandler,), {"model": embedder})) as root:
        yield root + "/v1"


def test_openai_backend_over_http(
    embeddings_server: str, embedder: OnnxMiniLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMB_KEY", "sk-test")
    remote = make_embedder(
        EmbeddingSettings(
            backend="openai", base_url=embeddings_server, model="minilm", api_key_env="EMB_KEY", batch_size=2
        )
    )
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.dim == 384  # asked of the server
    texts = ["alpha", "beta gamma", "delta epsilon zeta"]
    assert np.allclose(remote.embed(texts), embedder.embed(texts), atol=1e-5)

    settings = load_settings(data_dir=tmp_path / "remote")
    ws = Workspace(settings, embedder=remote)
    coll = ws.collection("remote", create=True)
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nThe backup job runs every night at two in the morning.\n")
    assert coll.ingest([str(doc)]).ingested == 1
    assert "backup" in coll.search("when do backups run", k=1, mode="dense")[0].text
    with pytest.raises(EmbeddingMismatch, match="minilm/openai"):
        Workspace(settings, embedder=embedder).collection("remote")


def test_openai_backend_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        make_embedder(EmbeddingSettings(backend="openai"))
    with pytest.raises(ModelUnavailable, match="NOT_SET_KEY"):
        make_embedder(
            EmbeddingSettings(backend="openai", base_url="http://127.0.0.1:9", api_key_env="NOT_SET_KEY")
        )
    unreachable = make_embedder(
        EmbeddingSettings(backend="openai", base_url="http://127.0.0.1:9/v1", dimensions=8, timeout_s=2)
    )
    with pytest.raises(ModelUnavailable, match="unreachable"):
        unreachable.embed(["x"])
