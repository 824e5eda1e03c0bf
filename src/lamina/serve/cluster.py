"""What replicas tell each other about models: open circuit breakers, and how many replicas there are.

With ``redis_url`` set, every replica runs ``Cluster.sync`` about twice a second (``SYNC_S``):

- **Breakers.** A breaker this replica opened is published with the cooldown as its time to live;
  a published one opens this replica's breaker too, for what is left of it. So an endpoint that
  failed through one replica is skipped by all within a second, and each replica sends its own
  half-open probe when the cooldown is over.
- **Capacity.** Each replica announces itself in a roster (a sorted set scored by when it was last
  seen; one unseen for ``ROSTER_S`` has gone). A model's ``max_inflight`` is divided among the
  live replicas, so the whole cluster runs at most that many generations of it (at least one per
  replica, so ``max_inflight`` below the replica count is exceeded). The fair ordering within each
  replica's queue stays local: tenants are served fairly per replica, not across them.

Without Redis nothing is shared and each replica has the whole ``max_inflight``. When Redis is away,
a replica keeps the last share it knew and its own breakers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lamina.engine.gateway import ModelGateway
from lamina.engine.routing import Breaker
from lamina.serve.redislink import RedisLink

SYNC_S = 0.5
ROSTER_S = 3.0


@dataclass(frozen=True)
class View:
    """What one sync learned: the replica count, this replica's rank, the endpoints open elsewhere."""

    replicas: int
    rank: int
    open_s: dict[str, float]  # breaker key -> seconds of cooldown left


def share(capacity: int, replicas: int, rank: int) -> int:
    """This replica's part of ``capacity`` (the parts add up to it; never below one)."""
    replicas = max(1, replicas)
    return max(1, capacity // replicas + (1 if rank < capacity % replicas else 0))


def breaker_key(model: str, url: str) -> str:
    return f"{model}|{url}"


class Cluster:
    def __init__(self, link: RedisLink, replica: str) -> None:
        self.link = link
        self.replica = replica
        self._published: dict[str, float] = {}  # breaker key -> opened_at we published

    def exchange(self, breakers: dict[str, Breaker]) -> View | None:
        """Announce this replica and its newly opened breakers; learn the others'. None: Redis away."""
        if not self.link.up:
            return None
        client, now_ms = self.link.client, int(time.time() * 1000)
        roster = self.link.key("replicas")
        try:
            with client.pipeline() as pipe:
                pipe.zadd(roster, {self.replica: now_ms})
                pipe.zremrangebyscore(roster, "-inf", now_ms - int(ROSTER_S * 1000))
                pipe.zrange(roster, 0, -1)
                for key, b in breakers.items():
                    if b.state == "open" and not b.from_peer and self._published.get(key) != b.opened_at:
                        self._published[key] = b.opened_at
                        pipe.set(self.link.key("breaker", key), self.replica, px=int(b.cooldown_s * 1000))
                keys = list(breakers)
                for key in keys:
                    pipe.pttl(self.link.key("breaker", key))
                replies = pipe.execute()
        except self.link.errors as exc:
            self.link.failed(exc)
            return None
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in replies[2]]
        ttls = replies[-len(keys) :] if keys else []
        open_s = {k: int(t) / 1000 for k, t in zip(keys, ttls, strict=True) if int(t) > 0}
        rank = members.index(self.replica) if self.replica in members else 0
        return View(len(members) or 1, rank, open_s)

    def leave(self) -> None:
        """Take this replica off the roster (a clean stop), so the others' shares grow at once."""
        try:
            self.link.client.zrem(self.link.key("replicas"), self.replica)
        except self.link.errors as exc:
            self.link.failed(exc)


def shared_breakers(gateway: ModelGateway) -> dict[str, Breaker]:
    """Every loaded endpoint's breaker, by the key replicas know it by."""
    return {breaker_key(n, e.url): e.breaker for n, d in gateway.deployments.items() for e in d.endpoints}


def apply_view(gateway: ModelGateway, view: View) -> None:
    """What the other replicas said (``Cluster.exchange``): their open breakers, our share of capacity."""
    for key, breaker in shared_breakers(gateway).items():
        if key in view.open_s:
            breaker.opened_elsewhere(view.open_s[key])
    for dep in gateway.deployments.values():
        dep.queue.resize(share(gateway.settings.serve.max_inflight, view.replicas, view.rank))
