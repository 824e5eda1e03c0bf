"""The prefix index in Redis, so every replica routes a prompt's prefix to the same endpoint.

One key per (model, prefix hash) holding the URL of the endpoint that last served it, expiring after
``ttl_s``; a lookup is one MGET, a write one pipeline. When Redis is away, lookups find nothing and
writes are dropped (the replica routes as if the prefix were new: least loaded), as every other user
of the link falls back (``lamina.serve.redislink``).
"""

from __future__ import annotations

from collections.abc import Sequence

from lamina.serve.redislink import RedisLink

TTL_S = 600


class RedisPrefixIndex:
    def __init__(self, link: RedisLink, ttl_s: int = TTL_S) -> None:
        self.link = link
        self.ttl_s = ttl_s

    def _keys(self, model: str, hashes: Sequence[str]) -> list[str]:
        return [self.link.key("prefix", model, h) for h in hashes]

    def lookup(self, model: str, hashes: Sequence[str]) -> list[str | None]:
        if not hashes or not self.link.up:
            return [None] * len(hashes)
        try:
            found = self.link.client.mget(self._keys(model, hashes))
        except self.link.errors as exc:
            self.link.failed(exc)
            return [None] * len(hashes)
        return [v.decode() if isinstance(v, bytes) else None for v in found]

    def remember(self, model: str, hashes: Sequence[str], url: str) -> None:
        if not hashes or not self.link.up:
            return
        try:
            with self.link.client.pipeline(transaction=False) as pipe:
                for key in self._keys(model, hashes):
                    pipe.set(key, url, ex=self.ttl_s)
                pipe.execute()
        except self.link.errors as exc:
            self.link.failed(exc)
