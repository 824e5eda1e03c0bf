"""The response-cache seams, and the one key every exact-match cache uses.

Only requests whose answer cannot vary are cached: temperature 0 (the request's or the model's
default) or a fixed seed. The key covers everything that changes the answer: tenant, model, the
endpoint, messages or prompt, every sampling parameter and tool, and for grounded answers the
collection, ``k`` and the collection's store version, which every write bumps, so an answer about
documents that have since changed is never served.

``ResponseCache`` holds exact-match answers by key; ``Partitions`` holds the semantic cache's
entries (``Similar``), grouped by a partition key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class ResponseCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


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
