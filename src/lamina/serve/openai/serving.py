"""Steps every generation request goes through: resolve the model, check the key may use it, take
an in-flight slot, and map upstream failures to the status a client can act on.

A stream is *primed* before the response starts: its first piece is awaited first, so a model that
is down or refuses the request gives a real HTTP error, not a 200 followed by an error event.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request
from opentelemetry import trace

from lamina.models.base import estimate_tokens
from lamina.models.types import GenerationRequest, Usage
from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError
from lamina.serve.policy.keys import Principal
from lamina.serve.policy.limits import worst_case_tokens
from lamina.serve.state import ServerState
from lamina.serve.upstreams.gateway import Deployment, Piece, Result, Slot
from lamina.serve.upstreams.routing import retryable
from lamina.serve.upstreams.upstream import UpstreamError
from lamina.telemetry import (
    FINISH_REASONS,
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    PROVIDER,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    STREAM,
    TIME_TO_FIRST_CHUNK,
    tracer,
)

RAG_PREFIX = "rag:"


async def deployment_for(state: ServerState, principal: Principal, model: str) -> Deployment:
    if model not in state.gateway.names:
        raise APIError(
            404,
            f"model {model!r} does not exist; see GET /v1/models",
            "not_found_error",
            param="model",
            code="model_not_found",
        )
    if not principal.may_use(model):
        raise APIError(
            403,
            f"this key may not use model {model!r}",
            "permission_error",
            param="model",
            code="model_not_allowed",
        )
    return await state.gateway.get(model)


def upstream_error(exc: UpstreamError, model: str) -> APIError:
    """What the client is told when the model failed (never the upstream's credentials or URL)."""
    if exc.status == 429:
        return APIError(
            429,
            f"model {model} is rate limited upstream; retry later",
            "rate_limit_error",
            code="upstream_rate_limited",
            headers={"Retry-After": str(round(exc.retry_after or 1))},
        )
    if 400 <= exc.status < 500 and exc.status not in (401, 403, 404, 408):
        return APIError(400, f"model {model} refused the request: {exc}", param="messages")
    if exc.status >= 500 or exc.status in (401, 403, 404, 408):
        return APIError(502, f"model {model} failed: {exc}", "upstream_error", code="upstream_failed")
    return APIError(
        503, f"model {model} is unavailable: {exc}", "upstream_error", code="upstream_unavailable"
    )


class Metered:
    """Notes tokens and time to first token in the request's context for the request log, and keeps
    the generation's span (GenAI semantic conventions) up to date until the request is over."""

    def __init__(self, ctx: RequestContext, model: str) -> None:
        self.ctx = ctx
        self.upstream_began = time.perf_counter()
        ctx.model = model
        self.usage = Usage()
        self.finish_reasons: list[str] = []
        self.span: trace.Span = trace.INVALID_SPAN

    def generation(self, dep: Deployment, request: GenerationRequest, *, stream: bool) -> trace.Span:
        """Open the generation's span (ended with the request); upstream attempts nest under it."""
        if self.span is not trace.INVALID_SPAN:
            return self.span
        operation = "chat" if request.kind == "chat" else "text_completion"
        attributes: dict[str, Any] = {
            OPERATION: operation,
            PROVIDER: "llama.cpp" if dep.spec.backend == "llamacpp" else "openai",
            REQUEST_MODEL: dep.name,
            STREAM: stream,
        }
        for param in ("max_tokens", "temperature", "top_p", "seed"):
            if (value := getattr(request, param)) is not None:
                attributes[f"gen_ai.request.{param}"] = value
        if request.n > 1:
            attributes["gen_ai.request.choice.count"] = request.n
        if request.tools:
            attributes["lamina.request.tools"] = request.tool_names
        self.span = tracer.start_span(
            f"{operation} {dep.name}", kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        self.upstream_began = time.perf_counter()
        self.ctx.on_exit(self._end)
        return self.span

    async def _end(self) -> None:
        span = self.span
        if span.is_recording():
            span.set_attribute(RESPONSE_MODEL, str(self.ctx.model))
            span.set_attribute(INPUT_TOKENS, self.usage.prompt_tokens)
            span.set_attribute(OUTPUT_TOKENS, self.usage.completion_tokens)
            if self.finish_reasons:
                span.set_attribute(FINISH_REASONS, self.finish_reasons)
            if self.ctx.tool_calls:
                span.set_attribute("lamina.response.tool_calls", self.ctx.tool_calls)
            error = self.ctx.error_type
            if error:
                span.set_attribute("error.type", error)
                span.set_status(trace.StatusCode.ERROR)
        span.end()

    def upstream(self, seconds: float) -> None:
        """Time the model itself took: what is left of the latency is the gateway's overhead."""
        self.ctx.add_upstream_time(seconds)

    def first_token(self) -> None:
        if self.ctx.ttft_ms is None:
            self.ctx.first_token()
            self.span.set_attribute(TIME_TO_FIRST_CHUNK, round(time.perf_counter() - self.upstream_began, 6))

    def record(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = usage
            self.ctx.record_usage(usage)

    def finished(self, reason: str | None) -> None:
        """A choice ended (once per choice): the request's finish reason is the first choice's."""
        if reason:
            self.finish_reasons.append(reason)
            self.ctx.finish_reason = self.finish_reasons[0]

    def called(self, names: list[str]) -> None:
        """Tools the model called: their names only (arguments may hold personal data)."""
        self.ctx.tool_calls.extend(names)

    def failed(self, error_type: str) -> None:
        self.ctx.error_type = error_type


async def admit(
    state: ServerState, principal: Principal, dep: Deployment, request: GenerationRequest, ctx: RequestContext
) -> None:
    """Reserve the worst case of this generation (priced as the dearest model of its fallback chain)."""
    prompt, completion = worst_case_tokens(request, dep.spec)
    specs = [state.gateway.spec(n) for n in (dep.name, *dep.spec.fallbacks)]
    cost = (
        prompt * max(s.price_input_per_mtok for s in specs)
        + completion * max(s.price_output_per_mtok for s in specs)
    ) / 1_000_000
    await state.limiter.admit(principal, ctx, cost_usd=cost, tokens=prompt + completion)


TIMEOUT_HEADERS = ("x-request-timeout", "x-stainless-read-timeout")  # the latter: the openai package's


def client_timeout(request: Request) -> float | None:
    """Seconds the client will wait, when it says so; a place in the queue must come before then."""
    for name in TIMEOUT_HEADERS:
        try:
            value = float(request.headers.get(name, ""))
        except ValueError:
            continue
        if value > 0 and math.isfinite(value):
            return value
    return None


async def admission(
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    request: GenerationRequest,
    ctx: RequestContext,
    timeout_s: float | None,
) -> Slot:
    """Check the model can take the request, reserve the budget, then wait for a fair place in the
    model's queue (before ``timeout_s``, the client's own deadline): one span for both."""
    dep.check(request)
    with tracer.start_as_current_span("admission", attributes={REQUEST_MODEL: dep.name}) as span:
        await admit(state, principal, dep, request, ctx)
        share = state.settings.serve.fair_share
        who = {"tenant": principal.tenant, "key": principal.key_name, "none": ""}[share]
        slot = await dep.slot(ctx, who, estimate_tokens(request.text) * request.choices, timeout_s)
        span.set_attribute("lamina.queue_ms", ctx.queue_ms or 0.0)
        return slot


async def generate_with_fallbacks(
    state: ServerState, dep: Deployment, request: GenerationRequest, meter: Metered
) -> tuple[Deployment, Result]:
    """A whole generation from the model, or else from its fallbacks in order."""
    last: UpstreamError | None = None
    began = time.perf_counter()
    span = meter.generation(dep, request, stream=False)
    try:
        for candidate in await _chain(state, dep, request):
            try:
                with trace.use_span(span, end_on_exit=False):
                    result = await candidate.generate(request)
            except UpstreamError as exc:
                last = exc
                if not retryable(exc):
                    break  # the request is at fault: another model would refuse it too
                continue
            meter.ctx.model = candidate.name
            for choice in result.choices:
                meter.finished(choice.finish_reason)
                meter.called(choice.tool_names)
            return candidate, result
    finally:
        meter.upstream(time.perf_counter() - began)
    assert last is not None
    raise upstream_error(last, dep.name)


async def _chain(state: ServerState, dep: Deployment, request: GenerationRequest) -> list[Deployment]:
    """The model and those of its fallbacks that can take the request (a text-only fallback is
    skipped for an image, not sent it without the image)."""
    chain = await state.gateway.chain(dep.name)
    return [dep, *(d for d in chain[1:] if request.needs() <= set(d.can))]


async def stream_with_fallbacks(
    state: ServerState, dep: Deployment, request: GenerationRequest, meter: Metered
) -> tuple[Deployment, Piece | None, AsyncGenerator[Piece, None]]:
    """A stream that has produced its first piece (so nothing was sent to the client yet), from the
    model or its fallbacks; the stream is closed when the request ends, however it ends."""
    last: UpstreamError | None = None
    span = meter.generation(dep, request, stream=True)
    for candidate in await _chain(state, dep, request):
        pieces = candidate.stream(request)
        meter.ctx.on_exit(pieces.aclose)
        try:
            with trace.use_span(span, end_on_exit=False):
                first = await anext(pieces)
        except StopAsyncIteration:
            first = None
        except UpstreamError as exc:
            await pieces.aclose()
            last = exc
            if not retryable(exc):
                break
            continue
        meter.ctx.model = candidate.name
        meter.first_token()
        return candidate, first, pieces
    assert last is not None
    raise upstream_error(last, dep.name)
