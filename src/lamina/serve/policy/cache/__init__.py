"""Response caches for deterministic requests, partitioned by tenant, behind two Protocols.

``serve.cache_backend`` picks where they live (``cache_backend``): ``memory`` is this process's
(``memory.py``: bounded LRUs with a time to live), ``redis`` is shared by every replica
(``redis.py``, imported only when it is picked). ``make_cache`` builds the exact-match cache
(``ResponseCache``, keyed by ``cache_key``); ``make_similar`` the semantic cache of grounded
answers (``SimilarQuestions`` in ``similar.py``, over ``Partitions``). The Protocols, the entry
type and the key are in ``base.py``; each implementation imports only from there.
"""

from __future__ import annotations

from collections.abc import Callable

from lamina.backends import choose
from lamina.config import Settings
from lamina.serve.policy.cache.base import Partitions, ResponseCache, Similar, cache_key
from lamina.serve.policy.cache.memory import MemoryCache, MemoryPartitions
from lamina.serve.policy.cache.similar import SimilarQuestions, same_sense

CacheFactory = Callable[[Settings], ResponseCache]
PartitionsFactory = Callable[[Settings], Partitions]


def _redis_cache(settings: Settings) -> ResponseCache:
    from lamina.serve.policy.cache.redis import RedisCache
    from lamina.serve.redislink import link_for

    return RedisCache(link_for(settings), settings.serve.cache_ttl_s)


def _redis_partitions(settings: Settings) -> Partitions:
    from lamina.serve.policy.cache.redis import RedisPartitions
    from lamina.serve.redislink import link_for

    return RedisPartitions(link_for(settings), settings.serve.cache_ttl_s)


CACHES: dict[str, CacheFactory] = {
    "memory": lambda settings: MemoryCache(settings.serve.cache_entries, settings.serve.cache_ttl_s),
    "redis": _redis_cache,
}
PARTITIONS: dict[str, PartitionsFactory] = {
    "memory": lambda settings: MemoryPartitions(),
    "redis": _redis_partitions,
}


def cache_backend(settings: Settings) -> str:
    name = settings.serve.cache_backend
    return ("redis" if settings.redis_url else "memory") if name == "auto" else name


def make_cache(settings: Settings) -> ResponseCache | None:
    """The response cache ``serve.cache_backend`` names, or None when ``serve.cache`` is off."""
    if not settings.serve.cache:
        return None
    return choose(CACHES, cache_backend(settings), "serve.cache_backend")(settings)


def make_similar(settings: Settings) -> SimilarQuestions | None:
    """The semantic cache of grounded answers, or None when ``serve.semantic_cache`` is off."""
    if not settings.serve.semantic_cache:
        return None
    store = choose(PARTITIONS, cache_backend(settings), "serve.cache_backend")(settings)
    return SimilarQuestions(settings.serve.semantic_threshold, settings.serve.cache_ttl_s, store)


__all__ = [
    "CACHES",
    "PARTITIONS",
    "CacheFactory",
    "MemoryCache",
    "MemoryPartitions",
    "Partitions",
    "PartitionsFactory",
    "ResponseCache",
    "Similar",
    "SimilarQuestions",
    "cache_backend",
    "cache_key",
    "make_cache",
    "make_similar",
    "same_sense",
]
