"""The counters seam: what budgets and rate limits need of a shared counter store.

A counter is a number with a name; a reservation raises several of them at once, all or none, and
settling replaces what was reserved by what was really used. Counter names carry their window
(``…:2026-11``), so a new window starts at zero by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from lamina.errors import LaminaError


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
