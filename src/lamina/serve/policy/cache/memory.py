"""The caches in this process's memory: bounded (LRU, with a time to live), one process's own."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from lamina.serve.policy.cache.base import Similar


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
