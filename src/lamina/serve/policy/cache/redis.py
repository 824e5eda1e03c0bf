"""The response cache and the semantic cache in Redis, shared by every replica.

Keys are the same as in memory (they already hold the tenant, the model, the collection and its
store version), under the configured prefix, and expire with ``serve.cache_ttl_s``: a write to a
collection bumps its version on the shared store, so every replica stops asking for the old keys
at once, and those entries age out. When Redis is away a lookup is a miss and a store is skipped.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np

from lamina.serve.policy.cache.base import Similar
from lamina.serve.redislink import RedisLink

PER_PARTITION = 256


class RedisCache:
    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self.link = link
        self.ttl_s = ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.link.up:
            return None
        try:
            raw = self.link.client.get(self.link.key("cache", key))
        except self.link.errors as exc:
            self.link.failed(exc)
            return None
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self.link.up:
            return
        try:
            self.link.client.set(self.link.key("cache", key), json.dumps(value), px=int(self.ttl_s * 1000))
        except self.link.errors as exc:
            self.link.failed(exc)


class RedisPartitions:
    """A partition is a Redis list of entries (newest last, at most ``PER_PARTITION``)."""

    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self.link = link
        self.ttl_s = ttl_s

    def entries(self, partition: str) -> list[Similar]:
        if not self.link.up:
            return []
        try:
            raw = self.link.client.lrange(self.link.key("similar", partition), 0, -1)
        except self.link.errors as exc:
            self.link.failed(exc)
            return []
        now = time.time()
        return [e for e in map(_decode, raw) if e.expires > now]

    def add(self, partition: str, entry: Similar) -> None:
        if not self.link.up:
            return
        key = self.link.key("similar", partition)
        try:
            with self.link.client.pipeline() as pipe:
                pipe.rpush(key, _encode(entry))
                pipe.ltrim(key, -PER_PARTITION, -1)
                pipe.pexpire(key, int(self.ttl_s * 1000))
                pipe.execute()
        except self.link.errors as exc:
            self.link.failed(exc)


def _encode(e: Similar) -> str:
    vector = base64.b64encode(np.asarray(e.vector, dtype=np.float32).tobytes()).decode()
    return json.dumps({"v": vector, "q": e.question, "a": e.value, "x": e.expires})


def _decode(raw: bytes | str) -> Similar:
    d = json.loads(raw)
    return Similar(np.frombuffer(base64.b64decode(d["v"]), dtype=np.float32), d["q"], d["a"], d["x"])
