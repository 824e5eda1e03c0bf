"""What replicas share through a real Redis: holds that expire, breakers and capacity shares, the
semantic cache, and what each does while Redis is away and after it is back."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from lamina.engine.routing import Breaker
from lamina.errors import LaminaError
from lamina.serve.cluster import Cluster, breaker_key, share
from lamina.serve.policy.cache import SimilarQuestions
from lamina.serve.policy.cache.redis import RedisCache, RedisPartitions
from lamina.serve.policy.counters import Charge, CountersUnavailable
from lamina.serve.policy.counters.redis import RedisCounters
from lamina.serve.redislink import RETRY_S, RedisLink
from lamina.testing.redis import RedisServer
from lamina.testing.server import until


def _link(url: str) -> RedisLink:
    return RedisLink(url, prefix=f"t{uuid.uuid4().hex[:10]}:")


def _charge(counter: str, amount: float, limit: float, kind: str = "budget_exceeded") -> Charge:
    return Charge(counter, amount, limit, kind, time.time() + 60, f"test {counter}")


def test_a_hold_never_settled_is_given_back(redis_url: str) -> None:
    """A replica that died mid-request never settles; its reservation lapses by itself."""
    counters = RedisCounters(_link(redis_url), hold_s=0.3)
    assert counters.reserve([_charge("usd", 8, 10)], "dead-replica") is None
    assert counters.reserve([_charge("usd", 8, 10)], "other") is not None  # held: no room
    assert counters.holds() == 1
    time.sleep(0.4)
    assert counters.reserve([_charge("usd", 8, 10)], "other") is None  # the dead hold was given back
    assert counters.used("usd") == 8 and counters.holds() == 1
    counters.settle([_charge("usd", 8, 10)], [1.5], "other")
    assert counters.used("usd") == 1.5 and counters.holds() == 0


def test_settling_after_the_hold_expired_charges_what_was_used(redis_url: str) -> None:
    counters = RedisCounters(_link(redis_url), hold_s=0.2)
    assert counters.reserve([_charge("usd", 5, 10)], "slow") is None
    time.sleep(0.3)
    assert counters.reserve([_charge("other", 1, 10)], "sweep") is None  # any call gives it back
    assert counters.used("usd") == 0
    counters.settle([_charge("usd", 5, 10)], [2.0], "slow")  # the slow request did finish
    assert counters.used("usd") == 2.0


def test_while_redis_is_away_rates_open_budgets_closed_and_then_it_is_used_again(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        link = _link(server.url)
        counters, cache = RedisCounters(link), RedisCache(link, ttl_s=60)
        cache.put("k", {"v": 1})
        server.stop()
        rate = [_charge("rpm", 1, 1, "rate_limited")]
        assert counters.reserve(rate, "a") is None and counters.reserve(rate, "b") is None  # not enforced
        with pytest.raises(CountersUnavailable, match="budget"):
            counters.reserve([_charge("usd", 1, 10)], "c")
        assert cache.get("k") is None  # a miss, not an error
        cache.put("k2", {"v": 2})  # skipped
        counters.settle(rate, [1.0], "a")  # dropped: nothing to settle against
        assert link.failures >= 3
        server.start()  # the same port, empty (in memory only)
        time.sleep(RETRY_S)
        until(lambda: counters.reserve(rate, "d") is None and counters.used("rpm") == 1, what="redis back")
        assert counters.reserve(rate, "e") is not None  # enforced again
        assert counters.reserve([_charge("usd", 1, 10)], "f") is None


def test_replicas_share_capacity_and_open_breakers(redis_url: str) -> None:
    link = _link(redis_url)
    a, b = Cluster(link, "replica-a"), Cluster(link, "replica-b")
    key = breaker_key("m", "http://upstream")
    breaker_a, breaker_b = (
        Breaker(failures_to_open=1, cooldown_s=30),
        Breaker(failures_to_open=1, cooldown_s=30),
    )
    assert a.exchange({key: breaker_a}) is not None
    view = b.exchange({key: breaker_b})
    assert view is not None and view.replicas == 2 and view.open_s == {}
    assert [share(8, 2, r) for r in (0, 1)] == [4, 4] and [share(5, 2, r) for r in (0, 1)] == [3, 2]
    assert share(1, 3, 2) == 1  # never zero: one place per replica at least
    breaker_a.failure()  # the endpoint failed through A
    a.exchange({key: breaker_a})
    view = b.exchange({key: breaker_b})
    assert view is not None and 29 < view.open_s[key] <= 30
    breaker_b.opened_elsewhere(view.open_s[key])
    assert breaker_b.state == "open" and not breaker_b.allow() and breaker_b.from_peer
    a.leave()
    view = b.exchange({key: breaker_b})
    assert view is not None and view.replicas == 1 and view.rank == 0


def test_the_semantic_cache_is_shared(redis_url: str) -> None:
    link = _link(redis_url)
    on_a = SimilarQuestions(0.95, 60, RedisPartitions(link, 60))
    on_b = SimilarQuestions(0.95, 60, RedisPartitions(link, 60))
    v = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    on_a.put("p", v, "When are refunds paid?", {"answer": "within 14 days"})
    hit = on_b.get("p", v, "when are refunds paid")
    assert hit is not None and hit[0] == {"answer": "within 14 days"} and hit[1] == pytest.approx(1.0)
    assert on_b.get("p", v, "When are refunds not paid?") is None
    assert on_b.get("other-partition", v, "When are refunds paid?") is None


def test_without_the_redis_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(LaminaError, match=r"pip install 'lamina\[redis\]'"):
        RedisLink("redis://127.0.0.1:1/0")
