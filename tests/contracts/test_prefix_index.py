"""The ``PrefixIndex`` Protocol's promises, against this process's index and Redis's (a real
redis-server started by the suite): which endpoint holds each prefix block, per model, forgotten after
its time to live."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lamina.engine.affinity import MemoryPrefixIndex, PrefixIndex
from lamina.serve.policy.prefix_index import RedisPrefixIndex
from lamina.serve.redislink import RedisLink


@pytest.fixture(params=["memory", "redis"])
def index(request: pytest.FixtureRequest) -> Iterator[PrefixIndex]:
    if request.param == "memory":
        yield MemoryPrefixIndex(ttl_s=0.3)
        return
    link = RedisLink(request.getfixturevalue("redis_url"), prefix=f"t{time.monotonic_ns()}:")
    yield RedisPrefixIndex(link, ttl_s=1)  # Redis counts whole seconds
    link.close()


def test_the_endpoint_that_served_a_block_is_found_per_model(index: PrefixIndex) -> None:
    assert index.lookup("m", ["a", "b"]) == [None, None]
    index.remember("m", ["a", "b"], "http://e1/v1")
    index.remember("m", ["b", "c"], "http://e2/v1")  # a later request: the block moved
    assert index.lookup("m", ["a", "b", "c", "d"]) == ["http://e1/v1", "http://e2/v1", "http://e2/v1", None]
    assert index.lookup("other", ["a"]) == [None]
    assert index.lookup("m", []) == []
    index.remember("m", [], "http://e3/v1")  # nothing to remember: nothing changes


def test_blocks_are_forgotten_after_their_time_to_live(index: PrefixIndex) -> None:
    index.remember("m", ["a"], "http://e1/v1")
    time.sleep(index.ttl_s + 0.2)
    assert index.lookup("m", ["a"]) == [None]


def test_redis_away_finds_nothing_and_drops_writes() -> None:
    index = RedisPrefixIndex(RedisLink("redis://127.0.0.1:1/0"))
    index.remember("m", ["a"], "http://e1/v1")
    assert index.lookup("m", ["a"]) == [None]
