"""What a request has in common with earlier ones, for routing that knows the endpoints' caches.

A model server keeps the prompts it has processed (llama.cpp's slots, vLLM's prefix cache): a request
whose beginning it has seen skips that part of its prefill. Two handles on that:

- **prefix blocks**: the request as the server will read it (tools, then the messages in order; a
  completion's prompt) cut into fixed blocks, each hashed with the ones before it, so a hash names a
  whole prefix. Which endpoint served each hash is kept in a ``PrefixIndex`` (in this process, or in
  Redis so every replica routes alike).
- **a session key**: the ``x-session-id`` a client sends, else the ``user`` field, else the key and
  the conversation's first messages; rendezvous hashing maps it to the same endpoint on every
  replica, with no state to share, and to another when that one is down.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from lamina.models.types import GenerationRequest, message_text

MAX_BLOCKS = 256  # a longer prompt is routed by its first MAX_BLOCKS blocks


def _rendered(request: GenerationRequest) -> str:
    """The request in the order a server reads it; what changes least comes first."""
    if request.messages is None:
        return "\x1e".join(request.prompts)
    parts = [json.dumps(request.tools, sort_keys=True)] if request.tools else []
    for m in request.messages:
        calls = json.dumps(m.get("tool_calls"), sort_keys=True) if m.get("tool_calls") else ""
        parts.append(f"{m.get('role')}\x1f{message_text(m)}\x1f{calls}")
    return "\x1e".join(parts)


def prefix_blocks(request: GenerationRequest, block_chars: int, model: str = "") -> list[str]:
    """Chained hashes of the request's whole blocks: the i-th names its first i + 1 blocks."""
    text = _rendered(request)
    out: list[str] = []
    chain = hashlib.blake2b(model.encode(), digest_size=12).hexdigest()
    for start in range(0, min(len(text) // block_chars, MAX_BLOCKS) * block_chars, block_chars):
        block = text[start : start + block_chars]
        chain = hashlib.blake2b(f"{chain}{block}".encode(), digest_size=12).hexdigest()
        out.append(chain)
    return out


def session_key(request: GenerationRequest) -> str:
    """What keeps a conversation together: its session id, its user, else how it began."""
    if request.session:
        return f"session:{request.session}"
    if request.user:
        return f"user:{request.user}"
    if request.messages:
        begun = "\x1e".join(f"{m.get('role')}\x1f{message_text(m)}" for m in request.messages[:2])
    else:
        begun = request.prompts[0][:512] if request.prompts else ""
    return "start:" + hashlib.blake2b(begun.encode(), digest_size=12).hexdigest()


def rendezvous(key: str, urls: Sequence[str]) -> list[int]:
    """Indexes of ``urls`` by their rendezvous (highest random weight) score for ``key``: the same
    order on every replica, and removing one endpoint moves only the keys it had."""
    score = [hashlib.blake2b(f"{key}\x1d{u}".encode(), digest_size=8).digest() for u in urls]
    return sorted(range(len(urls)), key=lambda i: score[i], reverse=True)


class PrefixIndex(Protocol):
    """Which endpoint last served each prefix hash, per model (``lamina.serve`` puts it in Redis)."""

    @property
    def ttl_s(self) -> float:
        """How long an entry is remembered after it was last written."""
        ...

    def lookup(self, model: str, hashes: Sequence[str]) -> list[str | None]:
        """The endpoint URL remembered for each hash (None: unknown), in order."""
        ...

    def remember(self, model: str, hashes: Sequence[str], url: str) -> None: ...


class MemoryPrefixIndex:
    """This process's index: bounded (least recently used out first) and forgetting after ``ttl_s``."""

    def __init__(self, max_entries: int = 100_000, ttl_s: float = 600.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, model: str, hashes: Sequence[str]) -> list[str | None]:
        now = time.monotonic()
        out: list[str | None] = []
        with self._lock:
            for h in hashes:
                found = self._entries.get((model, h))
                if found is None or found[1] < now:
                    out.append(None)
                    continue
                self._entries.move_to_end((model, h))
                out.append(found[0])
        return out

    def remember(self, model: str, hashes: Sequence[str], url: str) -> None:
        until = time.monotonic() + self.ttl_s
        with self._lock:
            for h in hashes:
                self._entries[(model, h)] = (url, until)
                self._entries.move_to_end((model, h))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
