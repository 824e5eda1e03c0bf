"""The upstream seam: every model is an OpenAI-compatible endpoint the gateway sends traffic to.

llama.cpp's own loopback server for a local GGUF (a *managed* upstream) and a remote
vLLM/Ollama/OpenAI endpoint are both ``Upstream``s, so routing, limits and accounting are written
once, and moving a model to vLLM is configuration. ``factory.py`` picks the implementation by the
endpoint URL's scheme (``http.py``; ``memory.py`` for tests); each implementation imports only
from here.

A stream that ends without ``[DONE]``, or carries an error event, raises ``UpstreamError``: the
caller must never turn a cut stream into a clean ``finish_reason: "stop"``. Closing the iterator
closes the connection, and the model's server then frees the slot (a client that disconnects
cancels work).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol


class UpstreamError(Exception):
    """An upstream failed: ``status`` is its HTTP status, or 0 when it could not be reached or cut off."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Upstream(Protocol):
    """What the gateway needs of a model endpoint: one JSON call, and one stream of JSON chunks."""

    base_url: str

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]: ...

    async def alive(self) -> bool: ...

    async def aclose(self) -> None: ...
