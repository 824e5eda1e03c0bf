"""Shared counters for budgets and rate limits, behind a small Protocol (SQL by default).

``serve.counters`` picks the implementation from ``COUNTERS`` (``make_counters``): ``redis`` is
shared by every replica and runs one script per request (``redis.py``); ``sql`` is shared by every
process on the gateway database (``sql.py``); ``memory`` holds one process's counters (tests, a
single worker). The Protocol and its types are in ``base.py``; each implementation imports only
from there, and the Redis one is imported only when it is picked.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from lamina.backends import choose
from lamina.config import Settings
from lamina.serve.policy.counters.base import Charge, CounterStore, CountersUnavailable
from lamina.serve.policy.counters.memory import MemoryCounters
from lamina.serve.policy.counters.sql import SqlCounters

CounterFactory = Callable[[Settings, sa.Engine], CounterStore]


def _redis(settings: Settings, engine: sa.Engine) -> CounterStore:
    from lamina.serve.policy.counters.redis import RedisCounters
    from lamina.serve.redislink import link_for

    return RedisCounters(link_for(settings), settings.serve.reservation_hold_s)


COUNTERS: dict[str, CounterFactory] = {
    "sql": lambda settings, engine: SqlCounters(engine),
    "memory": lambda settings, engine: MemoryCounters(),
    "redis": _redis,
}


def make_counters(settings: Settings, engine: sa.Engine) -> CounterStore:
    """The counters ``serve.counters`` names (``engine``: the gateway database, for ``sql``)."""
    name = settings.serve.counters
    if name == "auto":
        name = "redis" if settings.redis_url else "sql"
    return choose(COUNTERS, name, "serve.counters")(settings, engine)


__all__ = [
    "COUNTERS",
    "Charge",
    "CounterFactory",
    "CounterStore",
    "CountersUnavailable",
    "MemoryCounters",
    "SqlCounters",
    "make_counters",
]
