"""Models as deployments behind the gateway: name -> (model-layer object, upstream, in-flight limit).

The model layer object (``LLM``) knows the tokenizer, window and chat-or-not; the upstream carries
the traffic. A completion-only model asked for a chat completion gets the conversation as a plain
transcript, so every model answers both endpoints.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractContextManager, aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace

from lamina.config import ModelSettings, Settings
from lamina.errors import UnknownModel
from lamina.models.base import LLM, request_body
from lamina.models.prompts import CHAT_AS_COMPLETION_STOP, chat_as_completion
from lamina.models.registry import ModelRegistry
from lamina.models.types import Usage
from lamina.serve.context import RequestContext
from lamina.serve.upstreams.admission import FairQueue, Ticket
from lamina.serve.upstreams.cluster import View, breaker_key, share
from lamina.serve.upstreams.routing import Breaker, Endpoint, backoff, pick, retryable
from lamina.serve.upstreams.upstream import UpstreamError, api_key, make_upstream
from lamina.telemetry import tracer

Kind = Literal["chat", "completion"]
T = TypeVar("T")


@dataclass
class Piece:
    """One streamed step: the delta to pass on (``content``, ``tool_calls``…), a finish reason, usage."""

    delta: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    @property
    def text(self) -> str:
        content = self.delta.get("content")
        return content if isinstance(content, str) else ""


@dataclass
class Result:
    """A whole (non-streamed) generation, as a chat message whatever the upstream endpoint was."""

    message: dict[str, Any]
    finish_reason: str
    usage: Usage

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""


class Slot:
    """A running generation's place in its model's queue; given back with the tokens it used, so
    the fair queue charges the tenant its real service. Releasing twice is harmless."""

    def __init__(self, deployment: Deployment, ticket: Ticket, ctx: RequestContext) -> None:
        self.deployment = deployment
        self.model = deployment.name
        self.ticket = ticket
        self._ctx = ctx

    async def release(self) -> None:
        self.ticket.release(self._ctx.prompt_tokens, self._ctx.completion_tokens)


class Deployment:
    """One model name: its endpoints (each behind a breaker), retries before the first byte, a limit."""

    def __init__(
        self, name: str, spec: ModelSettings, llm: LLM, endpoints: list[Endpoint], queue: FairQueue
    ) -> None:
        self.name = name
        self.spec = spec
        self.llm = llm
        self.endpoints = endpoints
        self.queue = queue
        self._rng = random.Random()

    @property
    def first_token_timeout(self) -> float:
        return self.spec.first_token_timeout_s or self.spec.timeout_s

    async def _attempts(self, call: Callable[[Endpoint], Awaitable[T]]) -> T:
        """``call`` on an endpoint, retried on other (or the same) endpoints while the error is
        retryable; an open breaker is skipped, and with every breaker open the model is down."""
        tried: set[int] = set()
        for attempt in range(self.spec.max_retries + 1):
            index = pick(self.endpoints, tried, self._rng)
            if index is None:
                raise UpstreamError(f"every endpoint of {self.name} is failing (circuit open)", 503)
            tried.add(index)
            endpoint = self.endpoints[index]
            try:
                with _attempt_span(endpoint, attempt) as span:
                    try:
                        result = await call(endpoint)
                    except UpstreamError as exc:
                        span.set_attribute("error.type", str(exc.status or type(exc).__name__))
                        raise
            except UpstreamError as exc:
                if not retryable(exc):
                    endpoint.breaker.success()  # it answered: it is up, the request was wrong
                    raise
                endpoint.breaker.failure()
                if attempt == self.spec.max_retries:
                    raise
                await asyncio.sleep(backoff(attempt, exc, self._rng))
            else:
                endpoint.breaker.success()
                return result
        raise AssertionError("unreachable")

    async def slot(self, ctx: RequestContext, who: str, tokens: float, timeout_s: float | None) -> Slot:
        """A place among the model's running generations, fairly between tenants (or 429).

        The place is given back when the request is over, or earlier by ``Slot.release``.
        """
        ticket = await self.queue.acquire(who, tokens, timeout_s)
        ctx.queue_ms = round(ticket.queued_s * 1000, 3)
        slot = Slot(self, ticket, ctx)
        ctx.on_exit(slot.release)
        return slot

    def body(self, kind: Kind, params: dict[str, Any], *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The upstream path and body, made by the model layer (the model's defaults under the
        request's own parameters); a base model gets a chat as a transcript."""
        body = request_body(self.name, self.spec, params, stream=stream)
        path = "/chat/completions"
        if kind == "completion":
            path = "/completions"
        elif not self.spec.chat:  # a base model: the conversation as a transcript
            path = "/completions"
            body["prompt"] = chat_as_completion(body.pop("messages"))
            stop = body.get("stop") or []
            body["stop"] = [*([stop] if isinstance(stop, str) else stop), *CHAT_AS_COMPLETION_STOP]
        return path, body

    async def generate(self, kind: Kind, params: dict[str, Any]) -> Result:
        path, body = self.body(kind, params, stream=False)

        async def post(endpoint: Endpoint) -> dict[str, Any]:
            try:
                return await asyncio.wait_for(endpoint.upstream.post(path, body), self.spec.timeout_s)
            except TimeoutError:
                raise UpstreamError(f"no answer within {self.spec.timeout_s:g}s") from None

        data = await self._attempts(post)
        choice = (data.get("choices") or [{}])[0]
        if "message" in choice:
            message = dict(choice["message"])
        else:
            message = {"role": "assistant", "content": choice.get("text") or ""}
        message.setdefault("role", "assistant")
        if self.transcript(kind) and isinstance(message.get("content"), str):
            message["content"] = message["content"].lstrip()
        return Result(message, choice.get("finish_reason") or "stop", _usage(data.get("usage")))

    def transcript(self, kind: Kind) -> bool:
        """A chat request to a base model: its answer follows "Assistant:" with a space to drop."""
        return kind == "chat" and not self.spec.chat

    async def stream(self, kind: Kind, params: dict[str, Any]) -> AsyncGenerator[Piece, None]:
        """Pieces of one generation; the upstream connection closes when the caller stops iterating."""
        path, body = self.body(kind, params, stream=True)
        strip = self.transcript(kind)  # until the first visible text, as ``generate`` does
        deadline = time.monotonic() + self.spec.timeout_s

        async def open_stream(endpoint: Endpoint) -> tuple[Endpoint, AsyncGenerator[dict[str, Any], None]]:
            chunks = endpoint.upstream.stream(path, body)
            try:
                head = await asyncio.wait_for(_until_first_token(chunks), self.first_token_timeout)
            except TimeoutError:
                await chunks.aclose()
                raise UpstreamError(f"no first token within {self.first_token_timeout:g}s") from None
            except UpstreamError:
                await chunks.aclose()
                raise
            return endpoint, _prepend(head, chunks)

        endpoint, chunks = await self._attempts(open_stream)
        async with aclosing(chunks):
            try:
                async for chunk in chunks:
                    if time.monotonic() > deadline:
                        raise UpstreamError(f"the model took longer than {self.spec.timeout_s:g}s")
                    piece = _piece(chunk)
                    if piece is None:
                        continue
                    if strip and "content" in piece.delta:
                        piece.delta["content"] = piece.text.lstrip()
                        strip = not piece.delta["content"]
                        if strip:
                            del piece.delta["content"]
                    yield piece
            except UpstreamError:
                endpoint.breaker.failure()  # cut or stalled after the first byte: no retry, but counted
                raise


def _attempt_span(endpoint: Endpoint, attempt: int) -> AbstractContextManager[trace.Span]:
    """One call to one endpoint (to the first token, for a stream), under the generation's span."""
    url = urlsplit(endpoint.url)
    return tracer.start_as_current_span(
        f"upstream {url.hostname}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "server.address": url.hostname or "",
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "lamina.attempt": attempt,
            "lamina.breaker": endpoint.breaker.state,
        },
    )


def _piece(chunk: dict[str, Any]) -> Piece | None:
    """An OpenAI stream chunk (chat or text completion) as a piece; None for an empty one."""
    usage = _usage(chunk["usage"]) if chunk.get("usage") else None
    choices = chunk.get("choices") or []
    if not choices:
        return Piece(usage=usage) if usage is not None else None
    choice = choices[0]
    if "delta" in choice:
        delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "role" and v is not None}
    else:
        delta = {"content": choice["text"]} if choice.get("text") else {}
    return Piece(delta, choice.get("finish_reason"), usage)


async def _until_first_token(chunks: AsyncGenerator[dict[str, Any], None]) -> list[dict[str, Any]]:
    """Chunks up to the first that carries content or a finish (a role-only chunk is not a token)."""
    head: list[dict[str, Any]] = []
    async for chunk in chunks:
        head.append(chunk)
        piece = _piece(chunk)
        if piece is not None and (piece.delta or piece.finish_reason):
            break
    return head


async def _prepend(head: list[T], rest: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    async with aclosing(rest):
        for item in head:
            yield item
        async for item in rest:
            yield item


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


class ModelGateway:
    """Every configured model as a deployment; local ones are loaded on first use (the default at start)."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._deployments: dict[str, Deployment] = {}
        self._lock = asyncio.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.settings.models)

    def spec(self, name: str) -> ModelSettings:
        if name not in self.settings.models:
            raise UnknownModel(f"model {name!r} does not exist; see GET /v1/models")
        return self.settings.models[name]

    async def get(self, name: str) -> Deployment:
        found = self._deployments.get(name)
        if found is not None:
            return found
        spec = self.spec(name)
        async with self._lock:
            if name not in self._deployments:
                llm = self.registry.get(name)
                endpoints = [
                    self._endpoint(spec, e.base_url, e.weight, e.api_key_env, name)
                    for e in await asyncio.to_thread(llm.endpoints)  # a local model loads here
                ]
                serve = self.settings.serve
                queue = FairQueue(name, serve.max_inflight, serve.max_queue, serve.max_queue_wait_s)
                self._deployments[name] = Deployment(name, spec, llm, endpoints, queue)
        return self._deployments[name]

    async def unreachable(self) -> dict[str, str]:
        """Loaded models whose upstream does not answer ``GET /models`` (a cheap liveness probe)."""
        problems: dict[str, str] = {}
        for name, dep in list(self._deployments.items()):
            if not any([await e.upstream.alive() for e in dep.endpoints]):
                problems[name] = "no endpoint answering"
        return problems

    @staticmethod
    def _endpoint(spec: ModelSettings, url: str, weight: float, key_env: str | None, name: str) -> Endpoint:
        upstream = make_upstream(
            url,
            api_key=api_key(name, key_env),
            timeout_s=spec.timeout_s,
            connect_timeout_s=spec.connect_timeout_s,
        )
        return Endpoint(url, upstream, weight, Breaker(spec.breaker_failures, spec.breaker_cooldown_s))

    async def chain(self, name: str) -> list[Deployment]:
        """The model and then its fallbacks, in order."""
        return [await self.get(n) for n in (name, *self.spec(name).fallbacks)]

    def breakers(self) -> list[tuple[str, str, int]]:
        """(model, endpoint URL, state code) of every loaded endpoint, for the metric."""
        return [(n, e.url, e.breaker.code) for n, d in self._deployments.items() for e in d.endpoints]

    def shared_breakers(self) -> dict[str, Breaker]:
        """Every loaded endpoint's breaker, by the key replicas know it by."""
        return {breaker_key(n, e.url): e.breaker for n, d in self._deployments.items() for e in d.endpoints}

    def apply(self, view: View) -> None:
        """What the other replicas said (``Cluster.exchange``): their open breakers, our share of capacity."""
        for key, breaker in self.shared_breakers().items():
            if key in view.open_s:
                breaker.opened_elsewhere(view.open_s[key])
        for dep in self._deployments.values():
            dep.queue.resize(share(self.settings.serve.max_inflight, view.replicas, view.rank))

    def running(self) -> dict[str, int]:
        return {name: dep.queue.running for name, dep in self._deployments.items()}

    def waiting(self) -> dict[str, int]:
        return {name: dep.queue.waiting for name, dep in self._deployments.items()}

    async def aclose(self) -> None:
        for dep in self._deployments.values():
            for endpoint in dep.endpoints:
                await endpoint.upstream.aclose()
        self._deployments.clear()
