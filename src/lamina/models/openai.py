"""Remote models over OpenAI-compatible HTTP (vLLM, Ollama, llama.cpp server, OpenAI).

Timeouts on every call; 429 and 5xx are retried with exponential backoff that honours
``Retry-After``; connection errors are retried too. A stream is only retried before its first byte.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import httpx

from lamina.config import ModelSettings
from lamina.errors import GenerationFailed
from lamina.http import bearer_headers
from lamina.models.base import ConfiguredModel, events_from_chunks, generation_from_response
from lamina.models.types import Generation, GenerationRequest, StreamEvent

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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

    def body(self, request: GenerationRequest, *, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.settings.model or self.name, **self.sampling(request)}
        if not body["stop"]:  # some servers reject an empty list
            del body["stop"]
        if request.messages is not None:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
            }
            if request.messages is None:  # /completions has no response_format in OpenAI's API;
                body["json_schema"] = request.json_schema  # llama.cpp reads this field, others ignore it
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

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
                if resp.status_code not in RETRY_STATUS:
                    raise GenerationFailed(f"model {self.name} at {self.settings.base_url}: {error}")
            if attempt >= self.settings.max_retries:
                raise GenerationFailed(
                    f"model {self.name} at {self.settings.base_url}: {error} (after {attempt + 1} attempts)"
                )
            delay = _retry_after(resp) if resp is not None else None
            if delay is None:
                delay = min(MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            time.sleep(min(delay, MAX_BACKOFF_S))
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
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    chunk: dict[str, Any] = json.loads(payload)
                    if chunk.get("error"):
                        raise GenerationFailed(f"model {self.name}: {chunk['error']}")
                    yield chunk
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
        return max(1, (len(text) + 2) // 3)  # conservative: ~3 characters a token

    @cached_property
    def _tokenize_url(self) -> str | None:
        assert self.settings.base_url is not None
        root = self.settings.base_url.rstrip("/")
        return root.removesuffix("/v1") + "/tokenize"

    def close(self) -> None:
        if "_client" in self.__dict__:
            self._client.close()
