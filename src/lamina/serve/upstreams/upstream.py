"""Every model is an OpenAI-compatible upstream: llama.cpp's own loopback server for a local GGUF
(a *managed* upstream), or a remote vLLM/Ollama/OpenAI endpoint. One async client serves both, so
routing, limits and accounting are written once, and moving a model to vLLM is configuration.

A stream that ends without ``[DONE]``, or carries an error event, raises ``UpstreamError``: the
caller must never turn a cut stream into a clean ``finish_reason: "stop"``. Closing the iterator
closes the connection, and llama.cpp then frees the slot (a client that disconnects cancels work).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

import httpx

from lamina.backends import choose
from lamina.errors import ModelUnavailable
from lamina.models.retry import parse_retry_after
from lamina.sse import StreamError, aevents, error_message


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


class HttpUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            transport=transport,
            trust_env=False,
        )

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._client.post(path, json=body)
        except httpx.TimeoutException:
            raise UpstreamError("the model did not answer in time") from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"the model is unreachable ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            raise _status_error(resp, resp.text)
        try:
            data: dict[str, Any] = resp.json()
        except ValueError:
            raise UpstreamError("the model answered with invalid JSON", resp.status_code) from None
        return data

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async with self._client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    raise _status_error(resp, (await resp.aread()).decode(errors="replace"))
                async for chunk in aevents(resp.aiter_lines()):
                    yield chunk
        except StreamError as exc:
            if exc.event is not None:
                raise UpstreamError(f"the model failed mid-stream: {exc}") from None
            raise UpstreamError(f"the model's {exc}") from None
        except httpx.TimeoutException:
            raise UpstreamError("the model stalled: no data within the timeout") from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"the model's stream broke off ({type(exc).__name__})") from None

    async def alive(self) -> bool:
        try:
            resp = await self._client.get("/models", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code < 500

    async def aclose(self) -> None:
        await self._client.aclose()


def make_upstream(
    url: str, *, api_key: str | None = None, timeout_s: float = 120.0, connect_timeout_s: float = 5.0
) -> Upstream:
    """The upstream for an endpoint URL, by its scheme: one entry in ``SCHEMES`` per kind."""
    scheme = url.split("://", 1)[0].lower()
    factory = choose(SCHEMES, scheme, "scheme", context=f"endpoint {url!r}", error=ModelUnavailable)
    return factory(url, api_key, timeout_s, connect_timeout_s)


def _http(url: str, key: str | None, timeout_s: float, connect_timeout_s: float) -> Upstream:
    return HttpUpstream(url, api_key=key, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)


def _memory(url: str, key: str | None, timeout_s: float, connect_timeout_s: float) -> Upstream:
    from lamina.serve.upstreams.memory import MemoryUpstream

    return MemoryUpstream(url)


SCHEMES: dict[str, Callable[[str, str | None, float, float], Upstream]] = {
    "http": _http,
    "https": _http,
    "memory": _memory,  # in this process, for tests (serve/upstreams/memory.py)
}


def api_key(model: str, env: str | None) -> str | None:
    """A remote endpoint's key, read from the environment variable its configuration names."""
    if not env:
        return None
    key = os.environ.get(env)
    if not key:
        raise ModelUnavailable(f"model {model}: api_key_env {env} is not set")
    return key


def _status_error(resp: httpx.Response, text: str) -> UpstreamError:
    try:
        data = json.loads(text)
        detail = error_message(data) if isinstance(data, dict) else text[:300]
    except ValueError:
        detail = text[:300]
    return UpstreamError(
        f"the model answered HTTP {resp.status_code}: {detail}",
        resp.status_code,
        parse_retry_after(resp.headers.get("retry-after")),
    )
