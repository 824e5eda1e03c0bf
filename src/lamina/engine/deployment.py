"""One model name as a deployment: its endpoints (each behind a breaker), retries before the first
byte, a fair queue; and the upstream's answers read into the engine's events.

The model layer's object (``Model``) knows the tokenizer, window, chat-or-not and how a request
becomes a body; the upstream carries the traffic. A completion-only model asked for a chat
completion gets the conversation as a plain transcript, so every model answers both endpoints.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractContextManager, aclosing
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace

from lamina.config import ModelSettings
from lamina.engine.admission import FairQueue, Ticket
from lamina.engine.affinity import MemoryPrefixIndex, PrefixIndex, prefix_blocks, session_key
from lamina.engine.events import Piece, Result, choice_of, pieces_of, usage_of
from lamina.engine.meter import Meter
from lamina.engine.routing import Endpoint, Route, backoff, pick, retryable
from lamina.engine.upstream import UpstreamError
from lamina.errors import Unsupported
from lamina.models.base import Model
from lamina.models.prompts import CHAT_AS_COMPLETION_STOP, chat_as_completion
from lamina.models.types import GenerationRequest
from lamina.telemetry import tracer

T = TypeVar("T")
log = logging.getLogger(__name__)


class Slot:
    """A running generation's place in its model's queue; given back with the tokens it used, so
    the fair queue charges the tenant its real service. Releasing twice is harmless."""

    def __init__(self, deployment: Deployment, ticket: Ticket, meter: Meter) -> None:
        self.deployment = deployment
        self.model = deployment.name
        self.ticket = ticket
        self._meter = meter

    async def release(self) -> None:
        usage = self._meter.usage
        self.ticket.release(usage.prompt_tokens, usage.completion_tokens)


class Deployment:
    """One model name: its endpoints (each behind a breaker), retries before the first byte, a limit."""

    def __init__(
        self, name: str, spec: ModelSettings, llm: Model, endpoints: list[Endpoint], queue: FairQueue
    ) -> None:
        self.name = name
        self.spec = spec
        self.llm = llm
        self.endpoints = endpoints
        self.queue = queue
        self.can = spec.can  # until ``ModelGateway.get`` asks the loaded model
        self.index: PrefixIndex = MemoryPrefixIndex()  # the gateway's shared one, once it is made
        self.routed: Counter[str] = Counter()  # routing decisions by reason (a metric)
        self._rng = random.Random()

    @property
    def first_token_timeout(self) -> float:
        return self.spec.first_token_timeout_s or self.spec.timeout_s

    async def route(self, request: GenerationRequest) -> Route:
        """What ``request`` is routed by under this model's policy (its prefix's known endpoints are
        looked up once, before the first attempt)."""
        spec = self.spec
        route = Route(spec.routing, spec.route_load_bound)
        if len(self.endpoints) < 2:
            return route
        if spec.routing == "session":
            route.key = session_key(request)
        elif spec.routing == "prefix":
            route.blocks = prefix_blocks(request, spec.prefix_block_chars, self.name)
            if route.blocks:
                try:
                    route.known = await asyncio.to_thread(self.index.lookup, self.name, route.blocks)
                except Exception as exc:  # the index (Redis) is away: route as if nothing were known
                    log.warning("model %s: prefix index lookup failed (%s)", self.name, exc)
        return route

    async def _served(self, route: Route, endpoint: Endpoint) -> None:
        """The endpoint now holds the request's prefix: later requests sharing it go there."""
        if route.blocks:
            try:
                await asyncio.to_thread(self.index.remember, self.name, route.blocks, endpoint.url)
            except Exception as exc:
                log.warning("model %s: prefix index update failed (%s)", self.name, exc)

    async def _attempts(self, call: Callable[[Endpoint], Awaitable[T]], route: Route) -> T:
        """``call`` on an endpoint, retried on other (or the same) endpoints while the error is
        retryable; an open breaker is skipped, and with every breaker open the model is down."""
        tried: set[int] = set()
        for attempt in range(self.spec.max_retries + 1):
            index, reason = pick(self.endpoints, tried, self._rng, route)
            if index is None:
                raise UpstreamError(f"every endpoint of {self.name} is failing (circuit open)", 503)
            if attempt == 0:
                self.routed[reason] += 1
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
                await self._served(route, endpoint)
                return result
        raise AssertionError("unreachable")

    async def slot(self, meter: Meter, who: str, tokens: float, timeout_s: float | None) -> Slot:
        """A place among the model's running generations, fairly between tenants (or ``Overloaded``).

        The place is given back when the request is over, or earlier by ``Slot.release``.
        """
        ticket = await self.queue.acquire(who, tokens, timeout_s)
        meter.queued(ticket.queued_s)
        slot = Slot(self, ticket, meter)
        meter.on_exit(slot.release)
        return slot

    def check(self, request: GenerationRequest) -> None:
        """Refuse what this model cannot take (an image to a text-only model, tools to a completion
        model), naming the model and what it lacks: never a silent drop."""
        if not request.needs:
            return
        missing = sorted(request.needs - set(self.can))
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
        body = self.llm.body(request, stream=stream)
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
            endpoint.in_flight += 1
            try:
                return await asyncio.wait_for(endpoint.upstream.post(path, body), self.spec.timeout_s)
            except TimeoutError:
                raise UpstreamError(f"no answer within {self.spec.timeout_s:g}s") from None
            finally:
                endpoint.in_flight -= 1

        data = await self._attempts(post, await self.route(request))
        transcript = self.transcript(request)
        choices = [choice_of(c, i, transcript) for i, c in enumerate(data.get("choices") or [{}])]
        return Result(choices, usage_of(data.get("usage")))

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
            endpoint.in_flight += 1  # until the stream ends (below), or fails to start
            try:
                head = await asyncio.wait_for(_until_first_token(chunks), self.first_token_timeout)
            except TimeoutError:
                endpoint.in_flight -= 1
                await chunks.aclose()
                raise UpstreamError(f"no first token within {self.first_token_timeout:g}s") from None
            except BaseException:
                endpoint.in_flight -= 1
                await chunks.aclose()
                raise
            return endpoint, _prepend(head, chunks)

        endpoint, chunks = await self._attempts(open_stream, await self.route(request))
        try:
            async with aclosing(self._pieces(chunks, endpoint, strip, deadline)) as pieces:
                async for piece in pieces:
                    yield piece
        finally:
            endpoint.in_flight -= 1

    async def _pieces(
        self,
        chunks: AsyncGenerator[dict[str, Any], None],
        endpoint: Endpoint,
        strip: set[int],
        deadline: float,
    ) -> AsyncGenerator[Piece, None]:
        """The upstream's chunks as pieces, the stream's deadline kept."""
        async with aclosing(chunks):
            try:
                async for chunk in chunks:
                    if time.monotonic() > deadline:
                        raise UpstreamError(f"the model took longer than {self.spec.timeout_s:g}s")
                    for piece in pieces_of(chunk):
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


async def _until_first_token(chunks: AsyncGenerator[dict[str, Any], None]) -> list[dict[str, Any]]:
    """Chunks up to the first that carries content or a finish (a role-only chunk is not a token)."""
    head: list[dict[str, Any]] = []
    async for chunk in chunks:
        head.append(chunk)
        if any(p.delta or p.finish_reason for p in pieces_of(chunk)):
            break
    return head


async def _prepend(head: list[T], rest: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    async with aclosing(rest):
        for item in head:
            yield item
        async for item in rest:
            yield item
