"""The two transports (sync and async, on httpx) and what they share: one request description (``Call``),
error mapping and the retry rule. Everything else in the client is written once over ``Call``."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

import httpx

from lamina import __version__
from lamina.client.errors import (
    APIConnectionError,
    LaminaError,
    RateLimitError,
    ServiceUnavailableError,
    connection_error,
    error_from_response,
)

T = TypeVar("T")
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # a grounded answer on a CPU model takes a while
RETRIED_LIMITS = ("model_busy", "upstream_rate_limited")  # short waits; never a budget or a rate limit
MAX_RETRY_WAIT_S = 20.0
Timeout = float | httpx.Timeout | None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its answer; ``accept``: error statuses that are answers."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    data: Mapping[str, Any] | None = None
    accept: frozenset[int] = field(default_factory=frozenset)
    timeout: Timeout = None


def root_url(base_url: str | None) -> str:
    """The server's root: ``http://host:8080``, ``http://host:8080/`` and ``…/v1`` are the same."""
    url = (base_url or os.environ.get("LAMINA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return url.removesuffix("/v1")


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"lamina-client/{__version__}", "Accept": "application/json"}
    key = api_key if api_key is not None else os.environ.get("LAMINA_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def request_args(root: str, headers: Mapping[str, str], call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"method": call.method, "url": root + call.path, "headers": headers}
    if call.params:
        args["params"] = {k: v for k, v in call.params.items() if v is not None}
    if call.json is not None:
        args["json"] = call.json
    if call.files:
        args["files"] = call.files
    if call.data:
        args["data"] = call.data
    if call.timeout is not None:
        args["timeout"] = call.timeout
    return args


def retry_delay(attempt: int, max_retries: int, err: LaminaError) -> float | None:
    """Seconds to wait before trying again, or ``None`` to raise ``err``.

    Retried: connections that could not be made, a busy model (429 ``model_busy`` or upstream), 503.
    Never: budgets, rate limits, timeouts (the server may have done the work), other errors.
    """
    if attempt >= max_retries:
        return None
    backoff = min(8.0, 0.5 * 2.0**attempt)
    if isinstance(err, APIConnectionError):
        return backoff if isinstance(err.__cause__, httpx.ConnectError) else None
    if isinstance(err, RateLimitError) and err.code in RETRIED_LIMITS:
        wait = err.retry_after if err.retry_after is not None else backoff
        return wait if wait <= MAX_RETRY_WAIT_S else None
    if isinstance(err, ServiceUnavailableError):
        return backoff
    return None


def openai_module() -> ModuleType:
    """The ``openai`` package, imported on first use: it is not a dependency of Lamina itself."""
    try:
        return importlib.import_module("openai")
    except ImportError:
        raise LaminaError("client.openai() needs the openai package: pip install openai") from None


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None, max_retries: int) -> None:
        self.root = root_url(base_url)
        self.headers = auth_headers(api_key)
        self.max_retries = max_retries

    @property
    def api_key(self) -> str | None:
        return self.headers.get("Authorization", "").removeprefix("Bearer ") or None


def _accepted(response: httpx.Response, call: Call[Any]) -> bool:
    return response.is_success or response.status_code in call.accept


class SyncTransport(_Base):
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: Timeout,
        max_retries: int,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries)
        self.http = http_client or httpx.Client(timeout=timeout)
        self._owned = http_client is None

    def call(self, call: Call[T]) -> T:
        return call.parse(self._send(call, stream=False))

    def open(self, call: Call[Any]) -> httpx.Response:
        """A streamed response with a success status; the caller closes it."""
        return self._send(call, stream=True)

    def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            err: LaminaError
            try:
                response = self.http.send(
                    self.http.build_request(**request_args(self.root, self.headers, call)), stream=stream
                )
                if _accepted(response, call):
                    return response
                response.read()
                response.close()
                err = error_from_response(response)
            except httpx.TransportError as exc:
                err = connection_error(exc)
            delay = retry_delay(attempt, self.max_retries, err)
            if delay is None:
                raise err
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self._owned:
            self.http.close()


class AsyncTransport(_Base):
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: Timeout,
        max_retries: int,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries)
        self.http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owned = http_client is None

    async def call(self, call: Call[T]) -> T:
        return call.parse(await self._send(call, stream=False))

    async def open(self, call: Call[Any]) -> httpx.Response:
        """A streamed response with a success status; the caller closes it."""
        return await self._send(call, stream=True)

    async def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            err: LaminaError
            try:
                response = await self.http.send(
                    self.http.build_request(**request_args(self.root, self.headers, call)), stream=stream
                )
                if _accepted(response, call):
                    return response
                await response.aread()
                await response.aclose()
                err = error_from_response(response)
            except httpx.TransportError as exc:
                err = connection_error(exc)
            delay = retry_delay(attempt, self.max_retries, err)
            if delay is None:
                raise err
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        if self._owned:
            await self.http.aclose()
