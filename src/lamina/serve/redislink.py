"""One connection to the Redis that replicas share (``redis_url``), and what it does when Redis is away.

Everything kept in Redis is there to be shared, not to be durable: counters of the current windows,
caches, breaker states, the replica roster. So when Redis cannot be reached, each user of the link
falls back on its own terms (counters: rate limits open, budgets closed; caches: a miss; breakers
and capacity: this replica alone) and the link stops trying for ``RETRY_S``, so that an outage
costs one failed connection per second rather than one per request. It is used again as soon as
Redis answers.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING

from lamina.config import Settings
from lamina.errors import ConfigError, LaminaError

if TYPE_CHECKING:
    import redis

log = logging.getLogger("lamina.serve")
RETRY_S = 1.0
TIMEOUT_S = 0.5


class RedisLink:
    def __init__(self, url: str, prefix: str = "lamina:") -> None:
        try:
            import redis
        except ModuleNotFoundError:
            raise LaminaError("redis_url needs the redis client: pip install 'lamina[redis]'") from None
        self.url = url
        self.prefix = prefix
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, decode_responses=False
        )
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.failures = 0  # calls refused or failed because Redis was away (a metric)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def up(self) -> bool:
        """Worth trying now: Redis answered last time, or the retry pause is over."""
        return time.monotonic() >= self._down_until

    def failed(self, exc: Exception) -> None:
        """Redis did not answer: pause for ``RETRY_S``, and say so once per outage."""
        with self._lock:
            self.failures += 1
            if self.up:
                log.warning("redis at %s is unreachable (%s); falling back for now", self._where(), exc)
            self._down_until = time.monotonic() + RETRY_S

    def close(self) -> None:
        self.client.close()

    def _where(self) -> str:
        return self.url.rsplit("@", 1)[-1]  # never the password


def link_for(settings: Settings) -> RedisLink:
    """The process's one link to ``redis_url`` (shared by counters, caches, breakers and the roster)."""
    if not settings.redis_url:
        raise ConfigError("this backend needs redis_url (LAMINA_REDIS_URL), e.g. redis://127.0.0.1:6379/0")
    return _link(settings.redis_url, settings.serve.redis_prefix)


@functools.cache
def _link(url: str, prefix: str) -> RedisLink:
    return RedisLink(url, prefix)
