"""The ``ResponseCache`` and ``Partitions`` Protocols' promises, against every registered backend."""

from __future__ import annotations

import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lamina.config import Settings, load_settings
from lamina.errors import ConfigError
from lamina.serve.policy.cache import (
    CACHES,
    PARTITIONS,
    MemoryCache,
    MemoryPartitions,
    Partitions,
    ResponseCache,
    Similar,
    SimilarQuestions,
    cache_key,
    make_cache,
    make_similar,
)
from lamina.serve.policy.cache.redis import PER_PARTITION, RedisCache, RedisPartitions

# what a chat answer that called tools looks like in the cache: nested lists, None, unicode, numbers
TOOL_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "cost_usd": 0.000125},
    "citations": [[1, 2], [], [3]],
}


def _settings(tmp_path: Path, *, redis: str | None = None, **serve: object) -> Settings:
    """Settings with ``redis`` as ``redis_url`` and a fresh key prefix."""
    if redis is None:
        return load_settings(data_dir=tmp_path / "data", serve=serve)
    serve = {"redis_prefix": f"t{uuid.uuid4().hex[:10]}:", **serve}
    return load_settings(data_dir=tmp_path / "data", redis_url=redis, serve=serve)


@pytest.fixture(params=sorted(CACHES.keys() | PARTITIONS.keys()))
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """A backend's name, and the suite's Redis for the ``redis`` one."""
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return str(request.param), redis


def small_cache(
    tmp_path: Path, backend: tuple[str, str | None], entries: int = 3, ttl_s: float = 3600.0
) -> ResponseCache:
    name, redis = backend
    settings = _settings(tmp_path, redis=redis, cache_backend=name, cache_entries=entries, cache_ttl_s=ttl_s)
    cache = make_cache(settings)
    assert cache is not None
    return cache


def partitions(tmp_path: Path, backend: tuple[str, str | None], ttl_s: float = 3600.0) -> Partitions:
    name, redis = backend
    return PARTITIONS[name](_settings(tmp_path, redis=redis, cache_backend=name, cache_ttl_s=ttl_s))


def entry(question: str, value: dict[str, Any], *, ttl_s: float = 60.0, dim: int = 4) -> Similar:
    rng = np.random.default_rng(zlib.crc32(question.encode()))
    vector = rng.standard_normal(dim).astype(np.float32)
    return Similar(vector / np.linalg.norm(vector), question, value, time.time() + ttl_s)


# the factories ---------------------------------------------------------------------------------
def test_the_cache_factory(tmp_path: Path, redis_url: str) -> None:
    assert isinstance(make_cache(_settings(tmp_path)), MemoryCache)
    assert isinstance(make_cache(_settings(tmp_path, redis=redis_url)), RedisCache)
    assert make_cache(_settings(tmp_path, cache=False)) is None
    assert make_similar(_settings(tmp_path)) is None  # off by default
    similar = make_similar(_settings(tmp_path, semantic_cache=True))
    assert similar is not None and isinstance(similar.store, MemoryPartitions)
    similar = make_similar(_settings(tmp_path, redis=redis_url, semantic_cache=True))
    assert similar is not None and isinstance(similar.store, RedisPartitions)
    with pytest.raises(ConfigError, match="memory, redis"):
        make_cache(_settings(tmp_path, cache_backend="etcd"))
    with pytest.raises(ConfigError, match="redis_url"):
        make_cache(_settings(tmp_path, cache_backend="redis"))
    with pytest.raises(ConfigError, match="redis_url"):
        make_similar(_settings(tmp_path, cache_backend="redis", semantic_cache=True))


def test_both_tables_name_the_same_backends() -> None:
    """A backend is both caches or neither: ``serve.cache_backend`` picks the two together."""
    assert CACHES.keys() == PARTITIONS.keys()


# ResponseCache ---------------------------------------------------------------------------------
def test_cache_get_put(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    cache = small_cache(tmp_path, backend)
    assert cache.get("k1") is None  # a miss is None, not an error
    cache.put("k1", {"answer": "one", "usage": {"tokens": 3}})
    assert cache.get("k1") == {"answer": "one", "usage": {"tokens": 3}}
    assert cache.get("k2") is None
    cache.put("k1", {"answer": "uno"})  # a put replaces
    assert cache.get("k1") == {"answer": "uno"}


def test_cache_values_round_trip_as_json(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    """Nested dicts and lists (tool calls), None, unicode and floats come back equal."""
    cache = small_cache(tmp_path, backend)
    cache.put("tools", TOOL_ANSWER)
    assert cache.get("tools") == TOOL_ANSWER
    assert cache.get("tools") == TOOL_ANSWER  # a hit does not use the entry up


def test_cache_entries_expire(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    cache = small_cache(tmp_path, backend, ttl_s=0.2)
    cache.put("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    time.sleep(0.3)
    assert cache.get("k") is None
    cache.put("k", {"v": 2})  # an expired key can be stored again
    assert cache.get("k") == {"v": 2}


def test_cache_is_bounded_least_recently_used_first(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    if backend[0] == "redis":
        pytest.skip("Redis bounds its memory itself: maxmemory with maxmemory-policy allkeys-lru")
    cache = small_cache(tmp_path, backend, entries=3)
    for key in ("a", "b", "c"):
        cache.put(key, {"v": key})
    assert cache.get("a") == {"v": "a"}  # a is now the most recently used
    cache.put("d", {"v": "d"})
    assert cache.get("b") is None
    assert [cache.get(k) for k in ("a", "c", "d")] == [{"v": "a"}, {"v": "c"}, {"v": "d"}]


def test_cache_keys_partition_tenants(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    params = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    alice = cache_key("alice", "m", "chat", params, 0.7)
    bob = cache_key("bob", "m", "chat", params, 0.7)
    assert alice and bob and alice != bob
    cache = small_cache(tmp_path, backend)
    cache.put(alice, {"answer": "for alice"})
    assert cache.get(bob) is None and cache.get(alice) == {"answer": "for alice"}
    assert (
        cache_key("alice", "m", "chat", {**params, "temperature": 0.5}, 0.0) is None
    )  # may vary: never cached


def test_cache_key_covers_what_changes_the_answer() -> None:
    params = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    key = cache_key("t", "m", "chat", params, 0.7)
    assert key == cache_key("t", "m", "chat", dict(reversed(params.items())), 0.7)  # order does not
    assert key != cache_key("t", "m2", "chat", params, 0.7)
    assert key != cache_key("t", "m", "completion", params, 0.7)
    assert key != cache_key("t", "m", "chat", {**params, "tools": [{"type": "function"}]}, 0.7)
    assert key != cache_key("t", "m", "chat", params, 0.7, collection="kb", version=2)
    assert cache_key("t", "m", "chat", {"prompt": "x"}, 0.0) is not None  # the model's default is 0
    assert cache_key("t", "m", "chat", {"prompt": "x", "temperature": 1, "seed": 7}, 0.0) is not None


# Partitions (the semantic cache's entries) ---------------------------------------------------------
def test_partitions_round_trip_newest_last(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    store = partitions(tmp_path, backend)
    assert store.entries("p") == []  # an unknown partition is empty
    first, second = entry("first?", {"answer": 1}), entry("second?", TOOL_ANSWER)
    store.add("p", first)
    store.add("p", second)
    got = store.entries("p")
    assert [e.question for e in got] == ["first?", "second?"]
    assert [e.value for e in got] == [{"answer": 1}, TOOL_ANSWER]
    assert [e.expires for e in got] == pytest.approx([first.expires, second.expires])
    for have, want in zip(got, (first, second), strict=True):
        assert np.allclose(have.vector, want.vector, atol=1e-7)
        assert np.asarray(have.vector).dtype == np.float32


def test_partitions_are_isolated(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    store = partitions(tmp_path, backend)
    store.add("tenant-a|kb|v1", entry("q?", {"for": "a"}))
    store.add("tenant-b|kb|v1", entry("q?", {"for": "b"}))
    assert [e.value for e in store.entries("tenant-a|kb|v1")] == [{"for": "a"}]
    assert [e.value for e in store.entries("tenant-b|kb|v1")] == [{"for": "b"}]
    assert store.entries("tenant-a|kb|v2") == []  # a bumped version is another partition


def test_partition_entries_expire(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    """An entry lives until its own ``expires`` (set by the semantic cache, the same on every replica)."""
    store = partitions(tmp_path, backend)
    store.add("p", entry("old?", {"v": 1}, ttl_s=0.2))
    store.add("p", entry("fresh?", {"v": 2}, ttl_s=60))
    assert [e.question for e in store.entries("p")] == ["old?", "fresh?"]
    time.sleep(0.3)
    assert [e.question for e in store.entries("p")] == ["fresh?"]  # only the live entries


def test_a_partition_keeps_its_newest_entries(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    store = partitions(tmp_path, backend)
    for n in range(PER_PARTITION + 3):
        store.add("p", entry(f"q{n}?", {"n": n}))
    got = store.entries("p")
    assert len(got) == PER_PARTITION
    assert got[0].value == {"n": 3} and got[-1].value == {"n": PER_PARTITION + 2}


def test_similar_questions_over_each_partitions(tmp_path: Path, backend: tuple[str, str | None]) -> None:
    """The semantic cache works the same whichever ``Partitions`` holds its entries."""
    similar = SimilarQuestions(0.95, 60, partitions(tmp_path, backend))
    vector = np.asarray([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    assert similar.get("p", vector, "When are refunds paid?") is None
    similar.put("p", vector, "When are refunds paid?", TOOL_ANSWER)
    hit = similar.get("p", vector * 2, "When are refunds paid?")  # a unit vector is stored
    assert hit is not None and hit[0] == TOOL_ANSWER and hit[1] == pytest.approx(1.0)
    assert similar.get("p", vector, "When are refunds not paid?") is None  # not the same sense
    assert similar.get("q", vector, "When are refunds paid?") is None  # nor another partition
