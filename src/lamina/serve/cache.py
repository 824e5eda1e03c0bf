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
import time
from collections import OrderedDict
from typing import Any, Protocol


class ResponseCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryCache:
    """In-process LRU; a shared store (Redis) can take its place behind ``ResponseCache``."""

    def __init__(self, max_entries: int = 2048, ttl_s: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


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
