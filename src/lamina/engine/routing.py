"""Which endpoint gets a request, and when to stop sending to one.

Each endpoint has a circuit breaker: ``failures`` in a row open it, and while open it gets no
traffic at all; after ``cooldown_s`` one probe request is let through (half-open), and its outcome
closes or re-opens the breaker. What is retried and how long to wait is the model layer's one
policy (``lamina.models.retry``).

Among the endpoints whose breaker is closed, a model's ``routing`` picks one:

- ``weighted``: at random by weight;
- ``least_loaded``: the fewest requests in flight (this process's, or the server's own count when
  it reports one, whichever is larger);
- ``session``: the same endpoint for a conversation (rendezvous hashing of its session key);
- ``prefix``: the endpoint that served the longest known prefix of the request (its cache holds it).

An endpoint the policy prefers but that is loaded past ``route_load_bound`` gives way to the least
loaded one, so a hot prefix or a long conversation never piles onto one server.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Literal

from lamina.engine.affinity import rendezvous
from lamina.engine.upstream import Upstream, UpstreamError
from lamina.models import retry as policy

State = Literal["closed", "open", "half_open"]
# why an endpoint was chosen (the routing metric's label)
Reason = Literal["weighted", "least_loaded", "session", "prefix_hit", "no_match", "load_override", "probe"]


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
    in_flight: int = 0  # requests this process has at the endpoint now
    server_load: int = 0  # what the server last said it runs and queues (0: not asked)

    @property
    def load(self) -> int:
        return max(self.in_flight, self.server_load)


@dataclass
class Route:
    """What one request is routed by: the policy, and its session key or its prefix blocks with the
    endpoint each was last served by."""

    policy: str = "weighted"
    bound: int = 4
    key: str = ""
    blocks: list[str] = field(default_factory=list)
    known: list[str | None] = field(default_factory=list)


def pick(
    endpoints: list[Endpoint], tried: set[int], rng: random.Random, route: Route | None = None
) -> tuple[int | None, Reason]:
    """An endpoint for the next attempt, untried ones first: a breaker due for its probe gets it,
    else one of the closed ones by the route's policy; ``None`` when every breaker is open."""
    untried = [i for i in range(len(endpoints)) if i not in tried]
    for pool in (untried, list(range(len(endpoints)))):
        for i in pool:
            if endpoints[i].breaker.state != "closed" and endpoints[i].breaker.allow():
                return i, "probe"
        closed = [i for i in pool if endpoints[i].breaker.state == "closed"]
        if closed:
            return _by_policy(endpoints, closed, rng, route or Route())
    return None, "probe"


def _by_policy(
    endpoints: list[Endpoint], closed: list[int], rng: random.Random, route: Route
) -> tuple[int, Reason]:
    if route.policy == "weighted":
        return rng.choices(closed, weights=[endpoints[i].weight for i in closed])[0], "weighted"
    fewest = min(endpoints[i].load for i in closed)
    calm = [i for i in closed if endpoints[i].load == fewest]
    least = rng.choices(calm, weights=[endpoints[i].weight for i in calm])[0]
    if route.policy == "least_loaded":
        return least, "least_loaded"
    preferred: int | None = None
    reason: Reason = "session"
    if route.policy == "session":
        preferred = next(i for i in rendezvous(route.key, [e.url for e in endpoints]) if i in closed)
    else:  # prefix: the endpoint that served the longest prefix it is known to hold
        at = {endpoints[i].url: i for i in closed}
        preferred = next((at[url] for url in reversed(route.known) if url in at), None)
        if preferred is None:
            return least, "no_match"
        reason = "prefix_hit"
    if endpoints[preferred].load > route.bound and fewest < endpoints[preferred].load:
        return least, "load_override"
    return preferred, reason


def retryable(exc: UpstreamError) -> bool:
    return policy.retryable(exc.status)


def backoff(attempt: int, exc: UpstreamError, rng: random.Random) -> float:
    return policy.backoff(attempt, exc.retry_after, rng)
