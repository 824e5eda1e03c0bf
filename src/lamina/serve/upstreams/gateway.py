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
from lamina.errors import UnknownModel, Unsupported
from lamina.models.base import LLM, request_body, request_params
from lamina.models.prompts import CHAT_AS_COMPLETION_STOP, chat_as_completion
from lamina.models.registry import ModelRegistry
from lamina.models.types import GenerationRequest, Usage
from lamina.serve.context import RequestContext
from lamina.serve.upstreams.admission import FairQueue, Ticket
from lamina.serve.upstreams.cluster import View, breaker_key, share
from lamina.serve.upstreams.factory import make_upstream
from lamina.serve.upstreams.routing import Breaker, Endpoint, backoff, pick, retryable
from lamina.serve.upstreams.upstream import UpstreamError, api_key
from lamina.telemetry import tracer

Kind = Literal["chat", "completion"]
T = TypeVar("T")


@dataclass
class Piece:
    """One streamed step of one choice (``index``): the delta to pass on (``content``, ``tool_calls``
    pieces as they come…), its logprobs, a finish reason; usage arrives in a piece of its own."""

    delta: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    index: int = 0
    logprobs: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        content = self.delta.get("content")
        return content if isinstance(content, str) else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls = self.delta.get("tool_calls")
        return calls if isinstance(calls, list) else []


@dataclass
class Choice:
    """One answer of a whole generation, as a chat message whatever the upstream endpoint was."""

    message: dict[str, Any]
    finish_reason: str
    index: int = 0
    logprobs: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""

    @property
    def tool_names(self) -> list[str]:
        return [str((c.get("function") or {}).get("name", "")) for c in self.message.get("tool_calls") or []]


@dataclass
class Result:
    """A whole (non-streamed) generation: its choices (``n`` per prompt) and the usage of all."""

    choices: list[Choice]
    usage: Usage

    @property
    def first(self) -> Choice:
        return self.choices[0]


class Collector:
    """Folds a stream's pieces into the whole result, as a non-streamed answer would have been:
    content joined, tool-call pieces merged by their index (arguments concatenated), logprobs
    appended. The one reader of streamed pieces, for the cache, the log and the RAG answerer."""

    def __init__(self) -> None:
        self._choices: dict[int, Choice] = {}
        self.usage = Usage()

    def add(self, piece: Piece) -> None:
        if piece.usage is not None:
            self.usage = piece.usage
        if not (piece.delta or piece.logprobs or piece.finish_reason):
            return
        choice = self._choices.setdefault(
            piece.index, Choice({"role": "assistant", "content": None}, "", piece.index)
        )
        message = choice.message
        for key, value in piece.delta.items():
            if key == "tool_calls":
                _merge_calls(message.setdefault("tool_calls", []), value)
            elif isinstance(value, str):
                message[key] = (message.get(key) or "") + value
            else:
                message[key] = value
        if piece.logprobs:
            choice.logprobs = _merge_logprobs(choice.logprobs, piece.logprobs)
        if piece.finish_reason:
            choice.finish_reason = piece.finish_reason

    def result(self) -> Result:
        choices = [self._choices[i] for i in sorted(self._choices)]
        for choice in choices:
            choice.finish_reason = choice.finish_reason or "stop"
        return Result(choices, self.usage)


def _merge_calls(calls: list[dict[str, Any]], pieces: list[dict[str, Any]]) -> None:
    """Tool-call deltas into whole calls: the first piece of a call names it, later ones add to
    its arguments (OpenAI's streaming format, which vLLM and llama.cpp follow)."""
    for piece in pieces:
        index = piece.get("index", len(calls))
        while len(calls) <= index:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        for key, value in piece.items():
            if key == "function":
                function = call["function"]
                for name, part in (value or {}).items():
                    function[name] = (function.get(name) or "") + part if isinstance(part, str) else part
            elif key != "index" and value is not None:
                call[key] = value


def _merge_logprobs(whole: dict[str, Any] | None, piece: dict[str, Any]) -> dict[str, Any]:
    """Logprobs of a piece appended to those so far (every list field grows; chat's ``content``
    and ``refusal``, or completions' ``tokens``, ``token_logprobs``…)."""
    merged = dict(whole or {})
    for key, value in piece.items():
        if isinstance(value, list):
            merged[key] = [*(merged.get(key) or []), *value]
        elif key not in merged or merged[key] is None:
            merged[key] = value
    return merged


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
        self.can = spec.can  # until ``ModelGateway.get`` asks the loaded model
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

    def check(self, request: GenerationRequest) -> None:
        """Refuse what this model cannot take (an image to a text-only model, tools to a completion
        model), naming the model and what it lacks: never a silent drop."""
        missing = sorted(request.needs() - set(self.can))
        if missing:
            why = f"set [models.{self.name}] capabilities"
            if set(missing) & set(self.spec.can):
                why = "its chat template cannot render them"
            raise Unsupported(
                f"model {self.name} does not take {' or '.join(missing)} (its capabilities: "
                f"{', '.join(self.can) or 'text only'}; {why})",
                missing[0],
            )

    def body(self, request: GenerationRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        """The upstream path and body, made by the model layer (the model's defaults under the
        request's own parameters); a base model gets a chat as a transcript."""
        self.check(request)
        body = request_body(self.name, self.spec, request_params(request), stream=stream)
        path = "/chat/completions"
        if request.kind == "completion":
            path = "/completions"
        elif not self.spec.chat:  # a base model: the conversation as a transcript
            path = "/completions"
            body["prompt"] = chat_as_completion(body.pop("messages"))
            stop = body.get("stop") or []
            body["stop"] = [*([stop] if isinstance(stop, str) else stop), *CHAT_AS_COMPLETION_STOP]
        return path, body

    async def generate(self, request: GenerationRequest) -> Result:
        path, body = self.body(request, stream=False)

        async def post(endpoint: Endpoint) -> dict[str, Any]:
            try:
                return await asyncio.wait_for(endpoint.upstream.post(path, body), self.spec.timeout_s)
            except TimeoutError:
                raise UpstreamError(f"no answer within {self.spec.timeout_s:g}s") from None

        data = await self._attempts(post)
        choices = [_choice(c, i, self.transcript(request)) for i, c in enumerate(data.get("choices") or [{}])]
        return Result(choices, _usage(data.get("usage")))

    def transcript(self, request: GenerationRequest) -> bool:
        """A chat request to a base model: its answer follows "Assistant:" with a space to drop."""
        return request.kind == "chat" and not self.spec.chat

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Piece, None]:
        """Pieces of one generation; the upstream connection closes when the caller stops iterating."""
        path, body = self.body(request, stream=True)
        strip: set[int] = set(range(request.choices)) if self.transcript(request) else set()
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
                    for piece in _pieces(chunk):
                        if piece.index in strip and "content" in piece.delta:
                            # until the first visible text, as ``generate`` does
                            piece.delta["content"] = piece.text.lstrip()
                            if piece.delta["content"]:
                                strip.discard(piece.index)
                            else:
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


def _choice(data: dict[str, Any], position: int, transcript: bool) -> Choice:
    """A choice of a (chat or text) completion response as a chat message."""
    if "message" in data:
        message = dict(data["message"] or {})
    else:
        message = {"role": "assistant", "content": data.get("text") or ""}
    message.setdefault("role", "assistant")
    if transcript and isinstance(message.get("content"), str):
        message["content"] = message["content"].lstrip()
    index = data.get("index")
    return Choice(
        message,
        data.get("finish_reason") or "stop",
        index if isinstance(index, int) else position,
        data.get("logprobs") or None,
    )


def _pieces(chunk: dict[str, Any]) -> list[Piece]:
    """An OpenAI stream chunk (chat or text completion) as pieces, one per choice it carries (usage
    comes as a piece of its own); none for an empty chunk."""
    pieces = []
    for position, choice in enumerate(chunk.get("choices") or []):
        if "delta" in choice:
            delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "role" and v is not None}
        else:
            delta = {"content": choice["text"]} if choice.get("text") else {}
        index = choice.get("index")
        logprobs = choice.get("logprobs") or None
        if delta or logprobs or choice.get("finish_reason"):
            pieces.append(
                Piece(
                    delta,
                    choice.get("finish_reason"),
                    None,
                    index if isinstance(index, int) else position,
                    logprobs,
                )
            )
    if chunk.get("usage"):
        pieces.append(Piece(usage=_usage(chunk["usage"])))
    return pieces


async def _until_first_token(chunks: AsyncGenerator[dict[str, Any], None]) -> list[dict[str, Any]]:
    """Chunks up to the first that carries content or a finish (a role-only chunk is not a token)."""
    head: list[dict[str, Any]] = []
    async for chunk in chunks:
        head.append(chunk)
        if any(p.delta or p.finish_reason for p in _pieces(chunk)):
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
                dep = Deployment(name, spec, llm, endpoints, queue)
                dep.can = await asyncio.to_thread(llm.capabilities)
                self._deployments[name] = dep
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
