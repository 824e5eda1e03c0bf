"""The response cache on a real server: hits cost nothing, partitions by tenant, forgets changed documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lamina.serve.policy.cache import SimilarQuestions
from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import finished_job, until
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import stub_model_config

CHAT = {
    "model": "stub",
    "messages": [{"role": "user", "content": "cache me"}],
    "max_tokens": 8,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def cached(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[tuple[InProcessServer, dict[str, str], StubUpstream]]:
    with StubUpstream("ok") as stub:
        server = InProcessServer(tmp_path_factory.mktemp("cache"), models_dir, config=stub_model_config(stub))
        store = server.keys()
        keys = {"a": store.create("a", tenant="a")[1], "b": store.create("b", tenant="b")[1]}
        keys["admin"] = store.create("admin", admin=True)[1]
        store.engine.dispose()
        with server:
            yield server, keys, stub


def _http(server: InProcessServer, key: str) -> httpx.Client:
    return server.http_client(headers={"Authorization": f"Bearer {key}"}, timeout=120)


def test_deterministic_requests_are_served_from_the_cache(
    cached: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, stub = cached
    stub.reset_stats()
    with _http(server, keys["a"]) as a:
        first = a.post("/v1/chat/completions", json=CHAT)
        second = a.post("/v1/chat/completions", json=CHAT)
        streamed = a.post("/v1/chat/completions", json=CHAT | {"stream": True})
        assert first.headers["x-lamina-cache"] == "miss" and second.headers["x-lamina-cache"] == "hit"
        assert streamed.headers["x-lamina-cache"] == "hit" and "data: [DONE]" in streamed.text
        assert second.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        assert stub.stats()["total"] == 1  # the model was called once
        sampled = a.post("/v1/chat/completions", json=CHAT | {"temperature": 0.7})
        assert "x-lamina-cache" not in sampled.headers  # may vary: never cached
        rows = until(  # the request log is written in batches
            lambda: [r for r in a.get("/v1/logs", params={"limit": 10}).json()["data"] if r["cached"]],
            what="the cached request in the log",
        )
    hit = next(r for r in rows if r["cached"])
    assert hit["cost_usd"] == 0
    with _http(server, keys["b"]) as b:  # another tenant never gets tenant a's answer
        assert b.post("/v1/chat/completions", json=CHAT).headers["x-lamina-cache"] == "miss"


def test_grounded_answers_are_forgotten_when_documents_change(
    cached: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, _ = cached
    ask = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "When are refunds paid?"}],
        "collection": "kb",
    }
    doc = b"# Refunds\n\nRefunds are paid within 14 days to the original payment method.\n"
    with _http(server, keys["a"]) as a:
        a.post("/v1/collections", json={"name": "kb"})
        job = a.post("/v1/collections/kb/documents", files={"files": ("refunds.md", doc)}).json()
        assert finished_job(a, job["id"])["state"] == "completed"
        assert a.post("/v1/chat/completions", json=ask).headers["x-lamina-cache"] == "miss"
        again = a.post("/v1/chat/completions", json=ask)
        assert again.headers["x-lamina-cache"] == "hit" and again.json()["choices"][0]["message"]["citations"]
        changed = doc.replace(b"14 days", b"30 days")
        job = a.post("/v1/collections/kb/documents", files={"files": ("refunds.md", changed)}).json()
        assert finished_job(a, job["id"])["state"] == "completed"
        assert a.post("/v1/chat/completions", json=ask).headers["x-lamina-cache"] == "miss"


def test_a_switch_to_another_version_retires_cached_answers(
    cached: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, _ = cached
    ask = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "How long does shipping take?"}],
        "collection": "handbook",
    }
    doc = b"# Shipping\n\nParcels are shipped within two days and arrive in a week.\n"
    with _http(server, keys["a"]) as a, _http(server, keys["admin"]) as admin:
        a.post("/v1/collections", json={"name": "handbook"})
        job = a.post("/v1/collections/handbook/documents", files={"files": ("ship.md", doc)}).json()
        assert finished_job(a, job["id"])["state"] == "completed"
        assert a.post("/v1/chat/completions", json=ask).headers["x-lamina-cache"] == "miss"
        assert a.post("/v1/chat/completions", json=ask).headers["x-lamina-cache"] == "hit"
        job = admin.post(
            "/v1/collections/handbook/versions", params={"tenant": "a"}, json={"switch": True}
        ).json()
        assert finished_job(admin, job["id"])["state"] == "completed"
        assert a.post("/v1/chat/completions", json=ask).headers["x-lamina-cache"] == "miss"


@pytest.fixture(scope="module")
def similar(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[tuple[InProcessServer, dict[str, str], StubUpstream]]:
    with StubUpstream("ok") as stub:
        config = "[serve]\nsemantic_cache = true\n\n" + stub_model_config(stub)
        server = InProcessServer(tmp_path_factory.mktemp("similar"), models_dir, config=config)
        store = server.keys()
        keys = {"a": store.create("a", tenant="a")[1], "b": store.create("b", tenant="b")[1]}
        store.engine.dispose()
        with server:
            yield server, keys, stub


def test_semantic_cache_same_meaning_same_tenant_same_documents(
    similar: tuple[InProcessServer, dict[str, str], StubUpstream],
) -> None:
    server, keys, stub = similar
    doc = b"# Refunds\n\nRefunds are paid within 14 days to the original payment method.\n"

    def ask(http: httpx.Client, question: str) -> httpx.Response:
        body = {
            "model": "stub",
            "messages": [{"role": "user", "content": question}],
            "collection": "kb",
            "temperature": 0,
        }
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        return r

    with _http(server, keys["a"]) as a, _http(server, keys["b"]) as b:
        for http in (a, b):
            http.post("/v1/collections", json={"name": "kb"})
            job = http.post("/v1/collections/kb/documents", files={"files": ("r.md", doc)}).json()
            assert finished_job(http, job["id"])["state"] == "completed"
        first = ask(a, "When are refunds paid?")
        assert first.headers["x-lamina-cache"] == "miss"
        stub.reset_stats()
        same = ask(a, "When are the refunds paid?")
        assert same.headers["x-lamina-cache"] == "hit"
        assert float(same.headers["x-lamina-cache-similarity"]) >= 0.95
        assert same.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        assert stub.stats()["total"] == 0
        # similar in the embedding (0.965) but the opposite question: never a hit
        assert ask(a, "When are refunds not paid?").headers["x-lamina-cache"] == "miss"
        assert ask(b, "When are the refunds paid?").headers["x-lamina-cache"] == "miss"  # other tenant
        changed = doc.replace(b"14 days", b"30 days")
        job = a.post("/v1/collections/kb/documents", files={"files": ("r.md", changed)}).json()
        assert finished_job(a, job["id"])["state"] == "completed"
        assert ask(a, "When are the refunds paid?").headers["x-lamina-cache"] == "miss"  # new version


def test_similar_questions_need_the_threshold_and_the_same_sense() -> None:
    cache = SimilarQuestions(threshold=0.95)
    v = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    cache.put("p", v, "Is the dog bigger than the cat?", {"answer": 1})
    assert cache.get("p", v, "is the dog bigger than the cat") == ({"answer": 1}, 1.0)
    assert cache.get("p", v, "Is the cat bigger than the dog?") is None  # roles swapped
    assert cache.get("p", v, "Is the dog not bigger than the cat?") is None  # negated
    assert cache.get("p", np.array([0.9, 0.44, 0.0]), "Is the dog bigger than the cat?") is None  # 0.898
    assert cache.get("q", v, "Is the dog bigger than the cat?") is None  # another partition
