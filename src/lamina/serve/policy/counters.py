"""Shared counters for budgets and rate limits, behind a small Protocol (SQL by default).

``serve.counters`` picks the implementation from ``COUNTERS`` (``make_counters``): ``redis`` is
shared by every replica and runs one script per request (``redis_counters.py``); ``sql`` is
shared by every process on the gateway database; ``memory`` holds one process's counters (tests,
a single worker).

A reservation is all-or-nothing across its counters and exact under concurrency: each counter is
raised by one conditional ``UPDATE … SET used = used + :n WHERE used + :n <= :limit``, all in one
transaction, so N concurrent requests can never together pass a limit. The same statements work on
SQLite (one file shared by the processes of one machine) and on Postgres (replicas on many), so
limits are never per replica. Counter names carry their window (``…:2026-11``), so a new window
starts at zero by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from lamina.backends import choose
from lamina.config import Settings
from lamina.errors import LaminaError
from lamina.serve.db import counters


@dataclass(frozen=True)
class Charge:
    """Raise ``counter`` by ``amount`` unless that would pass ``limit`` (which resets at ``resets_at``)."""

    counter: str
    amount: float
    limit: float
    kind: str  # "budget_exceeded" or "rate_limited": what a refusal says
    resets_at: float  # unix time
    what: str  # for the message, e.g. "key alice's daily budget of $5"
    measure: Literal["usd", "requests", "tokens"] = "usd"  # what settling replaces the reservation with


class CountersUnavailable(LaminaError):
    """The shared counters cannot be reached, and the request has a budget: it is refused (503)."""


class CounterStore(Protocol):
    def reserve(self, charges: list[Charge], hold: str = "") -> Charge | None:
        """Apply every charge, or none: returns the first charge that would pass its limit.
        ``hold`` names the reservation, for stores that give back the holds of dead replicas."""
        ...

    def settle(self, charges: list[Charge], actual: list[float], hold: str = "") -> None:
        """Replace reserved amounts by what was really used."""
        ...

    def used(self, counter: str) -> float: ...


class SqlCounters:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # SQLite serialises writers anyway: a lock avoids busy retries. Postgres locks only the rows a
        # reservation touches, so reservations of different keys run side by side.
        self._lock: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    def reserve(self, charges: list[Charge], hold: str = "") -> Charge | None:
        c = counters.c
        names = sorted({charge.counter for charge in charges})
        with self._lock, self.engine.begin() as conn:
            # rows made if missing (two first requests race to make one: neither fails), then locked
            # in one order, so that two reservations sharing counters never deadlock on Postgres
            conn.execute(_insert_missing(self.engine), [{"name": n, "used": 0.0} for n in names])
            conn.execute(sa.select(c.name).where(c.name.in_(names)).order_by(c.name).with_for_update())
            for charge in charges:
                raised = conn.execute(
                    sa.update(counters)
                    .where(c.name == charge.counter, c.used + charge.amount <= charge.limit)
                    .values(used=c.used + charge.amount)
                ).rowcount
                if not raised:
                    conn.rollback()
                    return charge
        return None

    def settle(self, charges: list[Charge], actual: list[float], hold: str = "") -> None:
        c = counters.c
        with self._lock, self.engine.begin() as conn:
            for charge, used in zip(charges, actual, strict=True):
                conn.execute(
                    sa.update(counters)
                    .where(c.name == charge.counter)
                    .values(used=c.used - charge.amount + used)
                )

    def used(self, counter: str) -> float:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(counters.c.used).where(counters.c.name == counter)).scalar()
        return float(value or 0.0)


def _insert_missing(engine: sa.Engine) -> sa.Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the engine's dialect (SQLite and Postgres both have it)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(counters).on_conflict_do_nothing(index_elements=["name"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(counters).on_conflict_do_nothing(index_elements=["name"])


class MemoryCounters:
    """One process's counters in a dict; a lock makes each reservation all-or-nothing and exact."""

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, charges: list[Charge], hold: str = "") -> Charge | None:
        with self._lock:
            pending: dict[str, float] = {}
            for charge in charges:
                now = pending.get(charge.counter, self._used.get(charge.counter, 0.0))
                if now + charge.amount > charge.limit:
                    return charge
                pending[charge.counter] = now + charge.amount
            self._used.update(pending)
        return None

    def settle(self, charges: list[Charge], actual: list[float], hold: str = "") -> None:
        with self._lock:
            for charge, used in zip(charges, actual, strict=True):
                if charge.counter in self._used:
                    self._used[charge.counter] += used - charge.amount

    def used(self, counter: str) -> float:
        with self._lock:
            return self._used.get(counter, 0.0)


CounterFactory = Callable[[Settings, sa.Engine], CounterStore]


def _redis(settings: Settings, engine: sa.Engine) -> CounterStore:
    from lamina.serve.policy.redis_counters import RedisCounters
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
