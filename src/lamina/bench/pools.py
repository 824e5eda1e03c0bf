"""The load generator's HTTP clients: one request at a time over kept-alive connections.

``RawPool`` is a minimal HTTP/1.1 keep-alive client over asyncio streams. Measured against the stub
on the 2-core dev box: httpx.AsyncClient spends ~0.5 ms of CPU a request and its core saturates near
1,000-1,500 req/s; the raw client spends ~0.05 ms and drove 10,000 req/s with a third of a core (the
stub was the limit). A generator that saturates its core turns its own queueing into "latency", so
``raw`` is the default and ``HttpxPool`` stays as a cross-check.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

# a content delta, completion text or Responses delta that is not empty: a stream's first token
_TOKEN = re.compile(rb'"(?:content|text|delta)":\s*"(?!")')
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# per API: its path under /v1, the bytes that end a complete stream
APIS = {
    "chat": ("/chat/completions", b"[DONE]"),
    "responses": ("/responses", b"event: response.completed"),
    "messages": ("/messages", b"event: message_stop"),
}


@dataclass(frozen=True)
class Target:
    """One endpoint: ``base_url`` ends in /v1, as an OpenAI client takes it; ``api`` is chat
    completions, OpenAI's Responses or Anthropic's Messages, each asked the same small question."""

    name: str
    base_url: str
    key: str
    model: str
    api: str = "chat"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + APIS[self.api][0]

    @property
    def end(self) -> bytes:
        return APIS[self.api][1]

    def body(self, stream: bool) -> bytes:
        hi = [{"role": "user", "content": "hi"}]
        payload: dict[str, object] = {"model": self.model, "messages": hi, "max_tokens": 16}
        if self.api == "responses":
            payload = {"model": self.model, "input": "hi", "max_output_tokens": 16, "store": False}
        return json.dumps({**payload, "stream": True} if stream else payload).encode()


class RequestFailed(Exception):
    """A request that did not end in a complete 200 answer; the message is the error's class."""


class Pool(Protocol):  # RawPool or HttpxPool
    async def request(self, stream: bool) -> tuple[float, float]:
        """Send one chat completion; (sent, first token) perf_counter times, raise RequestFailed."""
        ...

    async def aclose(self) -> None: ...


class RawPool:
    """Keep-alive HTTP/1.1 connections to one target, at most ``max_connections`` in use at once."""

    def __init__(self, target: Target, max_connections: int) -> None:
        url = urlsplit(target.base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the raw client speaks plain http only: {target.base_url}")
        self.host, self.port = url.hostname, url.port or 80
        path = urlsplit(target.url).path
        self._end = target.end
        self._payload = {s: self._request_bytes(path, target, s) for s in (False, True)}
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)

    def _request_bytes(self, path: str, target: Target, stream: bool) -> bytes:
        body = target.body(stream)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {target.key}\r\nContent-Type: application/json\r\n"
            f"Accept: {'text/event-stream' if stream else 'application/json'}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def request(self, stream: bool) -> tuple[float, float]:
        async with self._slots:
            for attempt in range(2):
                conn, reused = await self._connect()
                sent = time.perf_counter()
                try:
                    conn[1].write(self._payload[stream])
                    try:
                        head = await conn[0].readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, ConnectionError) as exc:
                        # a kept-alive connection the server had closed: once more on a fresh one
                        if reused and attempt == 0 and not getattr(exc, "partial", b""):
                            conn[1].close()
                            continue
                        raise
                    status, first, keep, tail = await self._body(conn[0], head, stream)
                except BaseException as exc:
                    conn[1].close()
                    if isinstance(exc, OSError | ValueError | asyncio.IncompleteReadError):
                        raise RequestFailed(type(exc).__name__) from exc
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
                if status != 200:
                    raise RequestFailed(f"HTTP {status}")
                if stream and self._end not in tail:
                    raise RequestFailed("stream without its end")
                return sent, first
        raise RequestFailed("unreachable")

    async def _connect(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn[0].at_eof():
                return conn, True
            conn[1].close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        return (reader, writer), False

    async def _body(
        self, reader: asyncio.StreamReader, head: bytes, stream: bool
    ) -> tuple[int, float, bool, bytes]:
        """Read the whole body: (status, first token time, keep the connection, its last bytes)."""
        status = int(head[9:12])
        length, chunked, keep = -1, False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = b"close" not in value.lower()
        first = 0.0
        tail = b""  # the last bytes, or the end of a stream once seen (it must have one)
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                data = (await reader.readexactly(size + 2))[:-2]
                if stream and not first and _TOKEN.search(data):
                    first = time.perf_counter()
                tail = tail if self._end in tail else (tail + data)[-(len(data) + 64) :]
        elif length >= 0:
            tail = (await reader.readexactly(length))[-64:]
        else:
            tail = (await reader.read())[-64:]
            keep = False
        return status, first or time.perf_counter(), keep, tail

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class HttpxPool:
    """The same requests through httpx.AsyncClient: a cross-check of the raw client, and slower."""

    def __init__(self, target: Target, max_connections: int) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(limits=limits, timeout=None)
        self._url = target.url
        self._end = target.end
        self._headers = {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}
        self._body = {s: target.body(s) for s in (False, True)}

    async def request(self, stream: bool) -> tuple[float, float]:
        sent = time.perf_counter()
        first, tail = 0.0, b""
        try:
            async with self._client.stream(
                "POST", self._url, content=self._body[stream], headers=self._headers
            ) as response:
                async for data in response.aiter_raw():
                    if stream and not first and _TOKEN.search(data):
                        first = time.perf_counter()
                    tail = tail if self._end in tail else (tail + data)[-(len(data) + 64) :]
        except httpx.HTTPError as exc:
            raise RequestFailed(type(exc).__name__) from exc
        if response.status_code != 200:
            raise RequestFailed(f"HTTP {response.status_code}")
        if stream and self._end not in tail:
            raise RequestFailed("stream without its end")
        return sent, first or time.perf_counter()

    async def aclose(self) -> None:
        await self._client.aclose()
