"""The one retry policy for calls to a model, used by the model layer's client and the gateway alike.

Retry on what a later attempt may fix: no answer (status 0: unreachable, timed out, cut off) and the
statuses that mean "busy" or "broken for now". Wait with exponential backoff and full jitter, or as
long as the model's ``Retry-After`` says, never longer than ``MAX_BACKOFF_S``.
"""

from __future__ import annotations

import random

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BASE_BACKOFF_S = 0.25
MAX_BACKOFF_S = 8.0


def retryable(status: int) -> bool:
    """May another attempt succeed? ``status`` 0 means the model could not be reached or cut off."""
    return status == 0 or status in RETRY_STATUS


def backoff(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: ``Retry-After`` if the model said, else full jitter."""
    if retry_after is not None:
        return min(max(0.0, retry_after), MAX_BACKOFF_S)
    return (rng or random).uniform(0, min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**attempt))


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is rare from model servers: ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
