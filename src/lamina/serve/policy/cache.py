"""An exact-match response cache for deterministic requests, partitioned by tenant.

Only requests whose answer cannot vary are cached: temperature 0 (the request's or the model's
default) or a fixed seed. The key covers everything that changes the answer: tenant, model, the
endpoint, messages or prompt, every sampling parameter and tool, and for grounded answers the
collection, ``k`` and the collection's store version, which every write bumps, so an answer about
documents that have since changed is never served. Bounded (LRU, with a time to live).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from lamina.backends import choose
from lamina.config import Settings


class ResponseCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryCache:
    """In-process LRU; a shared store (Redis) can take its place behind ``ResponseCache``."""

    def __init__(self, max_entries: int = 2048, ttl_s: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()  # handlers run in threads too (asyncio.to_thread)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


CacheFactory = Callable[[Settings], ResponseCache]
PartitionsFactory = Callable[[Settings], "Partitions"]


def _redis_cache(settings: Settings) -> ResponseCache:
    from lamina.serve.policy.redis_cache import RedisCache
    from lamina.serve.redislink import link_for

    return RedisCache(link_for(settings), settings.serve.cache_ttl_s)


def _redis_partitions(settings: Settings) -> Partitions:
    from lamina.serve.policy.redis_cache import RedisPartitions
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


def cache_key(
    tenant: str, model: str, kind: str, params: dict[str, Any], default_temperature: float, **extra: Any
) -> str | None:
    """The request's key, or None when its answer may vary (sampling at temperature > 0, no seed)."""
    temperature = params.get("temperature")
    temperature = default_temperature if temperature is None else temperature
    if temperature != 0 and params.get("seed") is None:
        return None
    material = {"tenant": tenant, "model": model, "kind": kind, "params": params, **extra}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class SimilarQuestions:
    """Grounded answers found again by a question's meaning, not its exact words.

    Entries are grouped by a partition key that holds everything but the question (tenant, model,
    collection and its version, sampling), so a hit can only come from the same tenant about the
    same documents; a re-ingest bumps the version and the old partition is never asked again.
    Within a partition, the nearest earlier question (cosine of unit vectors) is a hit at or above
    ``threshold``. A threshold alone is not enough: with MiniLM, "Is the cat bigger than the dog?"
    and its reverse score 0.994 and "When are refunds not paid?" 0.965 against the plain question.
    So a hit must also keep the negations and the order of the words the two questions share.
    Where the entries live is ``Partitions``' business: this process's memory, or Redis.
    """

    def __init__(
        self, threshold: float = 0.95, ttl_s: float = 3600.0, store: Partitions | None = None
    ) -> None:
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.store: Partitions = store if store is not None else MemoryPartitions()

    def get(self, partition: str, vector: np.ndarray, question: str) -> tuple[dict[str, Any], float] | None:
        entries = self.store.entries(partition)
        if not entries:
            return None
        sims = np.stack([e.vector for e in entries]) @ _unit(vector)
        for i in np.argsort(-sims):
            if sims[i] < self.threshold:
                return None
            if same_sense(entries[i].question, question):
                return entries[i].value, float(sims[i])
        return None

    def put(self, partition: str, vector: np.ndarray, question: str, value: dict[str, Any]) -> None:
        self.store.add(partition, Similar(_unit(vector), question, value, time.time() + self.ttl_s))


@dataclass
class Similar:
    vector: np.ndarray
    question: str
    value: dict[str, Any]
    expires: float  # unix time: the same on every replica


class Partitions(Protocol):
    """Where the semantic cache keeps its entries: the live (unexpired) ones of a partition, newest last."""

    def entries(self, partition: str) -> list[Similar]: ...

    def add(self, partition: str, entry: Similar) -> None: ...


class MemoryPartitions:
    def __init__(self, per_partition: int = 256, partitions: int = 1024) -> None:
        self.per_partition = per_partition
        self.max_partitions = partitions
        self._parts: OrderedDict[str, list[Similar]] = OrderedDict()
        self._lock = threading.Lock()

    def entries(self, partition: str) -> list[Similar]:
        now = time.time()
        with self._lock:
            entries = [e for e in self._parts.get(partition, []) if e.expires > now]
            if not entries:
                self._parts.pop(partition, None)
                return []
            self._parts[partition] = entries
            self._parts.move_to_end(partition)
            return entries

    def add(self, partition: str, entry: Similar) -> None:
        with self._lock:
            entries = self._parts.setdefault(partition, [])
            self._parts.move_to_end(partition)
            entries.append(entry)
            del entries[: -self.per_partition]
            while len(self._parts) > self.max_partitions:
                self._parts.popitem(last=False)


_WORD = re.compile(r"[a-z0-9]+")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nor|cannot|without)\b|n't\b")


def same_sense(a: str, b: str) -> bool:
    """Same negations, and the words both questions use in the same order (no swapped roles)."""
    a, b = a.lower(), b.lower()
    if len(_NEGATION.findall(a)) != len(_NEGATION.findall(b)):
        return False
    wa, wb = list(dict.fromkeys(_WORD.findall(a))), list(dict.fromkeys(_WORD.findall(b)))
    shared = set(wa) & set(wb)
    return [w for w in wa if w in shared] == [w for w in wb if w in shared]


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v
