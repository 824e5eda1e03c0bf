"""An OpenAI-compatible endpoint over HTTP: llama.cpp's loopback server, or vLLM/Ollama/OpenAI.

One async client (aiohttp) serves both managed and remote upstreams. A stream that ends without
``[DONE]``, or carries an error event, raises ``UpstreamError``; closing the iterator closes the
connection, and llama.cpp then frees the slot (a client that disconnects cancels work).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp

from lamina.engine.upstream import UpstreamError
from lamina.models.retry import parse_retry_after
from lamina.sse import StreamError, aevents, error_message


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


def _status_error(status: int, retry_after: str | None, text: str) -> UpstreamError:
    try:
        data = json.loads(text)
        detail = error_message(data) if isinstance(data, dict) else text[:300]
    except ValueError:
        detail = text[:300]
    return UpstreamError(
        f"the model answered HTTP {status}: {detail}", status, parse_retry_after(retry_after)
    )
