"""The OpenAI-compatible embedder against a real loopback server: requests in flight, retries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lamina.config import load_settings
from lamina.data.collection import Workspace
from lamina.data.embed import make_embedder
from lamina.data.embed.openai import OpenAIEmbedder
from lamina.errors import ModelUnavailable
from lamina.testing.embed_stub import StubEmbedder, embedding_server
from tests.conftest import SCIFACT

TEXTS = [f"text number {i}" for i in range(40)]


def _embedder(url: str, **options: object) -> OpenAIEmbedder:
    settings = load_settings(
        embedding={"backend": "openai", "base_url": url, "model": "stub", "batch_size": 4, **options}
    )
    embedder = make_embedder(settings.embedding)
    assert isinstance(embedder, OpenAIEmbedder)
    return embedder


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_in_flight_follow_embedding_concurrency(concurrency: int) -> None:
    stub = StubEmbedder(latency_s=0.1)
    with embedding_server(stub) as url:
        vectors = _embedder(url, concurrency=concurrency).embed(TEXTS)
    assert stub.requests == len(TEXTS) // 4
    assert stub.max_in_flight == concurrency
    want = np.asarray([stub.vector(t) for t in TEXTS], dtype=np.float32)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(vectors, want, atol=1e-6)  # in the order asked, whatever answered first


def test_a_busy_endpoint_is_retried_with_backoff() -> None:
    stub = StubEmbedder(latency_s=0.0, fail_first=2)
    with embedding_server(stub) as url:
        vectors = _embedder(url, concurrency=1, max_retries=3).embed(TEXTS[:4])
    assert vectors.shape == (4, stub.dim) and stub.requests == 3


def test_an_endpoint_still_failing_after_its_retries_is_a_clear_error() -> None:
    stub = StubEmbedder(latency_s=0.0, fail_first=100)
    with embedding_server(stub) as url, pytest.raises(ModelUnavailable, match="answered 503"):
        _embedder(url, concurrency=1, max_retries=1).embed(TEXTS[:4])
    assert stub.requests == 2


def test_ingestion_with_a_remote_embedder(tmp_path: Path) -> None:
    stub = StubEmbedder(latency_s=0.02)
    folder = tmp_path / "abstracts"
    folder.mkdir()
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[:12]:
        doc = json.loads(line)
        (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    with embedding_server(stub) as url:
        settings = load_settings(
            data_dir=tmp_path / "data",
            embedding={"backend": "openai", "base_url": url, "model": "stub", "concurrency": 4},
            ingest={"batch_documents": 3},  # the next batch is chunked while this one's requests fly
        )
        ws = Workspace(settings)
        report = ws.collection("kb", create=True).ingest([str(folder)])
        assert report.ingested == 12 and report.tokens_embedded > 0
        coll = ws.collection("kb")
        hits = coll.search("cancer", k=3, mode="hybrid")
        again = coll.ingest([str(folder)])
    assert hits and stub.max_in_flight > 1
    assert coll.store.sources() == {d.source: d.chunks for d in coll.documents()}
    assert again.unchanged == 12 and again.chunks_embedded == 0
