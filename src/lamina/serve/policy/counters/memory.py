"""One process's counters (tests, a single worker): nothing is shared with another process."""

from __future__ import annotations

import threading

from lamina.serve.policy.counters.base import Charge


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
