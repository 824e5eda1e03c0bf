"""The semantic cache: grounded answers found again by a question's meaning, not its exact words."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from lamina.serve.policy.cache.base import Partitions, Similar
from lamina.serve.policy.cache.memory import MemoryPartitions


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
