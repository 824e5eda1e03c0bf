"""A loopback ``/v1/embeddings`` server with a fixed latency per request, for tests and benchmarks.

It measures Lamina, not a model: each text's vector is a pseudo-random function of the text, so
any client, concurrency or batching gets the same vector for the same text. It counts requests
and the most it had in flight, and can answer 503 to the first ``fail_first`` requests.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamina.testing.json_http import JsonHandler, serving


@dataclass
class StubEmbedder:
    latency_s: float = 0.05
    dim: int = 64
    fail_first: int = 0
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return [float(x) for x in np.random.default_rng(seed).standard_normal(self.dim)]


@contextmanager
def embedding_server(stub: StubEmbedder) -> Iterator[str]:
    """Serve ``stub``; yields the base URL to configure (``http://127.0.0.1:PORT/v1``)."""

    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            with stub._lock:
                stub.requests += 1
                number = stub.requests
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
            time.sleep(stub.latency_s)
            payload: dict[str, Any]
            if number <= stub.fail_first:
                status, payload = 503, {"error": {"message": "warming up"}}
            else:
                data = [{"index": i, "embedding": stub.vector(t)} for i, t in enumerate(body["input"])]
                status, payload = 200, {"object": "list", "data": data, "model": body.get("model", "")}
            with stub._lock:  # done before the client can read the answer and send the next
                stub.in_flight -= 1
            self.reply(payload, status=status)

    with serving(Handler) as root:
        yield f"{root}/v1"
