"""Counters in the gateway database, shared by every process that uses it.

A reservation is all-or-nothing across its counters and exact under concurrency: each counter is
raised by one conditional ``UPDATE … SET used = used + :n WHERE used + :n <= :limit``, all in one
transaction, so N concurrent requests can never together pass a limit. The same statements work on
SQLite (one file shared by the processes of one machine) and on Postgres (replicas on many), so
limits are never per replica.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import sqlalchemy as sa

from lamina.serve.db import counters
from lamina.serve.policy.counters.base import Charge


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
