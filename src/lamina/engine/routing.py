"""Which endpoint gets a request, and when to stop sending to one.

Each endpoint has a circuit breaker: ``failures`` in a row open it, and while open it gets no
traffic at all; after ``cooldown_s`` one probe request is let through (half-open), and its outcome
closes or re-opens the breaker. What is retried and how long to wait is the model layer's one
policy (``lamina.models.retry``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Literal

from lamina.engine.upstream import Upstream, UpstreamError
from lamina.models import retry as policy

State = Literal["closed", "open", "half_open"]


@dataclass
class Breaker:
    failures_to_open: int = 5
    cooldown_s: float = 30.0
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    from_peer: bool = False  # opened because another replica opened it (not published again)
    clock: object = field(default=time.monotonic, repr=False)

    def _now(self) -> float:
        now: float = self.clock()  # type: ignore[operator]
        return now

    def allow(self) -> bool:
        """May a request go to this endpoint now? (Taking the half-open probe if it is due.)"""
        if self.state == "closed":
            return True
        if self.state == "open" and self._now() - self.opened_at >= self.cooldown_s:
            self.state = "half_open"
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.state, self.failures, self.probing = "closed", 0, False

    def failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self.state == "half_open" or self.failures >= self.failures_to_open:
            self.state, self.opened_at, self.from_peer = "open", self._now(), False

    def opened_elsewhere(self, left_s: float) -> None:
        """Another replica opened this endpoint's breaker, with ``left_s`` of its cooldown to go."""
        if self.state == "closed":
            self.state, self.probing, self.from_peer = "open", False, True
            self.opened_at = self._now() - max(0.0, self.cooldown_s - left_s)

    @property
    def code(self) -> int:
        """0 closed, 1 half-open, 2 open (for the metric)."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.state]


@dataclass
class Endpoint:
    url: str
    upstream: Upstream
    weight: float
    breaker: Breaker


def pick(endpoints: list[Endpoint], tried: set[int], rng: random.Random) -> int | None:
    """An endpoint for the next attempt, untried ones first: a breaker due for its probe gets it,
    else one of the closed ones by weight; ``None`` when every breaker is open."""
    untried = [i for i in range(len(endpoints)) if i not in tried]
    for pool in (untried, list(range(len(endpoints)))):
        for i in pool:
            if endpoints[i].breaker.state != "closed" and endpoints[i].breaker.allow():
                return i
        closed = [i for i in pool if endpoints[i].breaker.state == "closed"]
        if closed:
            return rng.choices(closed, weights=[endpoints[i].weight for i in closed])[0]
    return None


def retryable(exc: UpstreamError) -> bool:
    return policy.retryable(exc.status)


def backoff(attempt: int, exc: UpstreamError, rng: random.Random) -> float:
    return policy.backoff(attempt, exc.retry_after, rng)
