"""The ``CounterStore`` Protocol's promises, against every registered backend (the caches':
test_cache_contract.py)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Literal

import pytest
import sqlalchemy as sa

from lamina.config import Settings, load_settings
from lamina.errors import ConfigError
from lamina.serve import db
from lamina.serve.policy.counters import (
    COUNTERS,
    Charge,
    CounterStore,
    MemoryCounters,
    SqlCounters,
    make_counters,
)
from lamina.serve.policy.counters.redis import RedisCounters
from lamina.serve.redislink import RedisLink


@pytest.fixture
def engine(gateway_engine: sa.Engine) -> sa.Engine:
    return gateway_engine


def _settings(tmp_path: Path, *, redis: str | None = None, **serve: object) -> Settings:
    """Settings with ``redis`` as ``redis_url`` and a fresh key prefix."""
    if redis is None:
        return load_settings(data_dir=tmp_path / "data", serve=serve)
    serve = {"redis_prefix": f"t{uuid.uuid4().hex[:10]}:", **serve}
    return load_settings(data_dir=tmp_path / "data", redis_url=redis, serve=serve)


@pytest.fixture(params=sorted(COUNTERS))
def counters(request: pytest.FixtureRequest, tmp_path: Path, engine: sa.Engine) -> CounterStore:
    redis = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return make_counters(_settings(tmp_path, redis=redis, counters=request.param), engine)


def charge(
    counter: str, amount: float, limit: float, measure: Literal["usd", "requests", "tokens"] = "usd"
) -> Charge:
    return Charge(counter, amount, limit, "budget_exceeded", 0.0, f"test {counter}", measure)


def test_the_factory_builds_each_backend_and_names_them(
    tmp_path: Path, engine: sa.Engine, redis_url: str
) -> None:
    assert isinstance(make_counters(_settings(tmp_path), engine), SqlCounters)  # the default
    assert isinstance(make_counters(_settings(tmp_path, redis=redis_url), engine), RedisCounters)
    assert isinstance(make_counters(_settings(tmp_path, counters="memory"), engine), MemoryCounters)
    with pytest.raises(ConfigError, match="memory, redis, sql"):
        make_counters(_settings(tmp_path, counters="etcd"), engine)
    with pytest.raises(ConfigError, match="redis_url"):
        make_counters(_settings(tmp_path, counters="redis"), engine)


def test_an_unknown_counter_is_zero(counters: CounterStore) -> None:
    assert counters.used("nobody:2026-11") == 0.0


def test_reserve_raises_up_to_the_limit_and_refuses_beyond(counters: CounterStore) -> None:
    assert counters.reserve([charge("k", 3, 10)]) is None
    assert counters.reserve([charge("k", 7, 10)]) is None  # exactly at the limit is allowed
    refused = counters.reserve([charge("k", 0.5, 10)])
    assert refused is not None and refused.counter == "k"
    assert counters.used("k") == 10


def test_a_reservation_is_all_or_nothing_over_its_counters(counters: CounterStore) -> None:
    assert counters.reserve([charge("a", 5, 10), charge("b", 5, 10)]) is None
    refused = counters.reserve([charge("a", 1, 10), charge("b", 6, 10), charge("c", 1, 10)])
    assert refused is not None and refused.counter == "b"  # the first charge that would pass its limit
    assert (counters.used("a"), counters.used("b"), counters.used("c")) == (5, 5, 0)  # none applied
    assert counters.reserve([charge("a", 1, 10), charge("b", 1, 10), charge("c", 1, 10)]) is None
    assert (counters.used("a"), counters.used("b"), counters.used("c")) == (6, 6, 1)


def test_the_same_counter_twice_in_one_reservation_adds_up(counters: CounterStore) -> None:
    refused = counters.reserve([charge("x", 6, 10), charge("x", 6, 10)])
    assert refused is not None and counters.used("x") == 0
    assert counters.reserve([charge("x", 4, 10), charge("x", 6, 10)]) is None
    assert counters.used("x") == 10


def test_settle_replaces_the_reservation_by_what_was_used(counters: CounterStore) -> None:
    reserved = [charge("usd", 2.0, 10), charge("tok", 500, 1000, "tokens")]
    assert counters.reserve(reserved, "r1") is None
    counters.settle(reserved, [0.25, 120], "r1")
    assert counters.used("usd") == pytest.approx(0.25) and counters.used("tok") == 120
    again = [charge("usd", 9.75, 10)]  # the refund made room: the limit counts what was really used
    assert counters.reserve(again, "r2") is None
    counters.settle(again, [9.75], "r2")
    assert counters.used("usd") == pytest.approx(10)
    counters.settle([charge("never-reserved", 1, 10)], [3], "r3")  # settling an unknown counter adds nothing
    assert counters.used("never-reserved") == 0


def test_exact_under_concurrent_threads(counters: CounterStore) -> None:
    """Many threads race for one limit, each also charging a counter of its own: exactly the
    limit's worth passes, and each thread's own counter moved only when the shared one did."""
    limit, threads, tries = 40, 8, 10
    passed: dict[int, int] = {}
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        passed[n] = sum(
            counters.reserve([charge(f"own:{n}", 1, 1000), charge("shared", 1, limit)]) is None
            for _ in range(tries)
        )

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sum(passed.values()) == limit and counters.used("shared") == limit
    assert {n: counters.used(f"own:{n}") for n in range(threads)} == passed


@pytest.fixture(params=["sql", "redis"])
def two_replicas(
    request: pytest.FixtureRequest, tmp_path: Path, gateway_engine: sa.Engine
) -> list[CounterStore]:
    """Two stores on one shared backend, each with its own engine or Redis link, as two replicas have."""
    if request.param == "sql":
        url = gateway_engine.url.render_as_string(hide_password=False)
        return [SqlCounters(db.connect(url)), SqlCounters(db.connect(url))]
    settings = _settings(tmp_path, redis=request.getfixturevalue("redis_url"))
    return [RedisCounters(RedisLink(settings.redis_url or "", settings.serve.redis_prefix)) for _ in range(2)]


def test_two_replicas_racing_on_a_fresh_counter_stay_exact(two_replicas: list[CounterStore]) -> None:
    """Their first requests race to make the same counter: none fails, and the limit holds across both."""
    start = threading.Barrier(8)
    passed: list[bool] = []
    errors: list[Exception] = []

    def worker(n: int) -> None:
        start.wait()
        try:
            for _ in range(5):
                passed.append(two_replicas[n % 2].reserve([charge("fresh", 1, 25)], f"h{n}") is None)
        except Exception as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors and sum(passed) == 25 and two_replicas[0].used("fresh") == 25
