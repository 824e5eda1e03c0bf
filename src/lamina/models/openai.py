"""Remote models over OpenAI-compatible HTTP (vLLM, Ollama, llama.cpp server, OpenAI).

Timeouts on every call; failures are retried by the one policy of ``models/retry.py`` (429 and 5xx,
connection errors; backoff with jitter that honours ``Retry-After``). A stream is only retried
before its first byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import httpx

from lamina.config import ModelSettings
from lamina.errors import GenerationFailed
from lamina.http import bearer_headers
from lamina.models.base import ConfiguredModel, estimate_tokens, events_from_chunks, generation_from_response
from lamina.models.retry import backoff, parse_retry_after, retryable
from lamina.models.types import Generation, GenerationRequest, StreamEvent
from lamina.sse import StreamError, events


class OpenAIModel(ConfiguredModel):
    def __init__(
        self, name: str, settings: ModelSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(name, settings)
        self._transport = transport

    @cached_property
    def _client(self) -> httpx.Client:
        headers = bearer_headers(self.settings.api_key_env, f"model {self.name}: api_key_env")
        assert self.settings.base_url is not None
        return httpx.Client(
            base_url=self.settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.settings.timeout_s, connect=min(10.0, self.settings.timeout_s)),
            transport=self._transport,
            trust_env=False,
        )

    @staticmethod
    def _path(request: GenerationRequest) -> str:
        return "/chat/completions" if request.messages is not None else "/completions"

    def _send(self, path: str, body: dict[str, Any], *, stream: bool = False) -> httpx.Response:
        """POST with retries; returns a response whose status is 2xx (streaming: not yet read)."""
        attempt = 0
        while True:
            resp: httpx.Response | None = None
            try:
                sent = self._client.send(self._client.build_request("POST", path, json=body), stream=stream)
            except httpx.TimeoutException:
                error = f"no answer within {self.settings.timeout_s}s"
            except httpx.TransportError as exc:
                error = f"unreachable ({type(exc).__name__}: {exc})"
            else:
                if sent.status_code < 400:
                    return sent
                resp = sent
                if stream:
                    resp.read()
                error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if not retryable(resp.status_code):
                    raise GenerationFailed(f"model {self.name} at {self.settings.base_url}: {error}")
            if attempt >= self.settings.max_retries:
                raise GenerationFailed(
                    f"model {self.name} at {self.settings.base_url}: {error} (after {attempt + 1} attempts)"
                )
            time.sleep(backoff(attempt, parse_retry_after(resp.headers.get("retry-after")) if resp else None))
            attempt += 1

    def generate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        data = self._send(self._path(request), self.body(request)).json()
        return generation_from_response(data, self.name, request.messages is not None, started)

    def stream(self, request: GenerationRequest) -> Iterator[StreamEvent]:
        started = time.perf_counter()
        resp = self._send(self._path(request), self.body(request, stream=True), stream=True)

        def chunks() -> Iterator[dict[str, Any]]:
            try:
                yield from events(resp.iter_lines())
            except StreamError as exc:
                raise GenerationFailed(f"model {self.name}: {exc}") from None
            except httpx.TimeoutException:
                raise GenerationFailed(
                    f"model {self.name}: stream stalled for {self.settings.timeout_s}s"
                ) from None
            finally:
                resp.close()

        yield from events_from_chunks(chunks(), self.name, started)

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer where it has one (llama.cpp, vLLM ``/tokenize``), else an estimate."""
        if self._tokenize_url is not None:
            try:
                resp = self._client.post(self._tokenize_url, json={"content": text, "add_special": True})
                if resp.status_code == 200:
                    return len(resp.json()["tokens"])
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            self._tokenize_url = None
        return estimate_tokens(text)

    @cached_property
    def _tokenize_url(self) -> str | None:
        assert self.settings.base_url is not None
        root = self.settings.base_url.rstrip("/")
        return root.removesuffix("/v1") + "/tokenize"

    def close(self) -> None:
        if "_client" in self.__dict__:
            self._client.close()
