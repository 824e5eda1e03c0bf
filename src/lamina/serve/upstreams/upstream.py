"""Every model is an OpenAI-compatible upstream: llama.cpp's own loopback server for a local GGUF
(a *managed* upstream), or a remote vLLM/Ollama/OpenAI endpoint. One async client (aiohttp) serves both, so
routing, limits and accounting are written once, and moving a model to vLLM is configuration.

A stream that ends without ``[DONE]``, or carries an error event, raises ``UpstreamError``: the
caller must never turn a cut stream into a clean ``finish_reason: "stop"``. Closing the iterator
closes the connection, and llama.cpp then frees the slot (a client that disconnects cancels work).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp

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
    """An OpenAI-compatible endpoint over aiohttp.

    aiohttp rather than httpx on this path: under concurrency httpx's connection pool becomes the
    gateway's bottleneck (encode/httpx#3215, openai-python#1596). Measured here against the stub
    upstream on 2 cores: httpx 574 / 671 / 92 req/s at 1 / 8 / 64 concurrent requests, aiohttp
    1,402 / 3,766 / 3,584. Everything else in Lamina (SDK, embeddings, reranker) keeps httpx.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(connect_timeout_s, timeout_s), sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop (as aiohttp wants)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=256),
                read_bufsize=2**20,  # one SSE line may carry a large piece
                trust_env=False,
            )
        return self._session

    def _url(self, path: str) -> str:
        return self.base_url + path

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.session.post(self._url(path), json=body) as resp:
                text = await resp.text(errors="replace")
                if resp.status >= 400:
                    raise _status_error(resp.status, resp.headers.get("retry-after"), text)
                try:
                    data: dict[str, Any] = json.loads(text)
                except ValueError:
                    raise UpstreamError("the model answered with invalid JSON", resp.status) from None
                return data
        except TimeoutError:
            raise UpstreamError("the model did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the model is unreachable ({type(exc).__name__})") from None

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async with self.session.post(self._url(path), json=body) as resp:
                if resp.status >= 400:
                    text = await resp.text(errors="replace")
                    raise _status_error(resp.status, resp.headers.get("retry-after"), text)
                async for chunk in aevents(_lines(resp.content)):
                    yield chunk
        except StreamError as exc:
            if exc.event is not None:
                raise UpstreamError(f"the model failed mid-stream: {exc}") from None
            raise UpstreamError(f"the model's {exc}") from None
        except TimeoutError:
            raise UpstreamError("the model stalled: no data within the timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the model's stream broke off ({type(exc).__name__})") from None

    async def alive(self) -> bool:
        try:
            async with self.session.get(
                self._url("/models"), timeout=aiohttp.ClientTimeout(total=2.0)
            ) as resp:
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    async for raw in content:
        yield raw.decode(errors="replace").rstrip("\r\n")


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


def _status_error(status: int, retry_after: str | None, text: str) -> UpstreamError:
    try:
        data = json.loads(text)
        detail = error_message(data) if isinstance(data, dict) else text[:300]
    except ValueError:
        detail = text[:300]
    return UpstreamError(
        f"the model answered HTTP {status}: {detail}", status, parse_retry_after(retry_after)
    )
