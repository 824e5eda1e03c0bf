"""Steps every generation request goes through: resolve the model, check the key may use it, take
an in-flight slot, and map upstream failures to the status a client can act on.

A stream is *primed* before the response starts: its first piece is awaited first, so a model that
is down or refuses the request gives a real HTTP error, not a 200 followed by an error event.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator

from fastapi import Request

from lamina.engine.deployment import Deployment, Slot
from lamina.engine.events import Piece, Result
from lamina.engine.meter import Cleanup, Meter
from lamina.engine.upstream import UpstreamError
from lamina.models.base import estimate_tokens
from lamina.models.types import GenerationRequest, Usage
from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError
from lamina.serve.policy.keys import Principal
from lamina.serve.policy.limits import worst_case_tokens
from lamina.serve.state import ServerState
from lamina.telemetry import REQUEST_MODEL, tracer

RAG_PREFIX = "rag:"


def rag_model(state: ServerState, collection: str) -> str:
    """The model that answers from ``collection`` (``rag:NAME``, or ``collection`` given): the one
    place this is decided, for the answer and for the model list alike."""
    return state.settings.serve.rag_models.get(collection, state.settings.default_model)


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


class Metered(Meter):
    """The engine's meter, mirrored into the request's context for the request log and metrics;
    its cleanups (a stream closed, the span ended) run when the request is over."""

    def __init__(self, ctx: RequestContext, model: str) -> None:
        super().__init__(model)
        self.ctx = ctx
        ctx.model = model

    def on_exit(self, cleanup: Cleanup) -> None:
        self.ctx.on_exit(cleanup)

    async def _end(self) -> None:
        self.error_type = self.ctx.error_type or self.error_type
        await super()._end()

    def queued(self, seconds: float) -> None:
        super().queued(seconds)
        self.ctx.queue_ms = round(seconds * 1000, 3)

    def answered_by(self, model: str) -> None:
        super().answered_by(model)
        self.ctx.model = model

    def upstream(self, seconds: float) -> None:
        super().upstream(seconds)
        self.ctx.add_upstream_time(seconds)

    def first_token(self) -> None:
        if self.ctx.ttft_ms is None:
            self.ctx.first_token()
        super().first_token()

    def record(self, usage: Usage | None) -> None:
        super().record(usage)
        self.ctx.record_usage(usage)

    def finished(self, reason: str | None) -> None:
        """A choice ended: the request's finish reason is the first choice's."""
        super().finished(reason)
        if self.finish_reasons:
            self.ctx.finish_reason = self.finish_reasons[0]

    def called(self, names: list[str]) -> None:
        super().called(names)
        self.ctx.tool_calls.extend(names)

    def failed(self, error_type: str) -> None:
        super().failed(error_type)
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
    meter: Metered,
    timeout_s: float | None,
) -> Slot:
    """Check the model can take the request, reserve the budget, then wait for a fair place in the
    model's queue (before ``timeout_s``, the client's own deadline): one span for both."""
    dep.check(request)
    with tracer.start_as_current_span("admission", attributes={REQUEST_MODEL: dep.name}) as span:
        await admit(state, principal, dep, request, meter.ctx)
        share = state.settings.serve.fair_share
        who = {"tenant": principal.tenant, "key": principal.key_name, "none": ""}[share]
        slot = await dep.slot(meter, who, estimate_tokens(request.text) * request.choices, timeout_s)
        span.set_attribute("lamina.queue_ms", meter.ctx.queue_ms or 0.0)
        return slot


async def generate_with_fallbacks(
    state: ServerState, dep: Deployment, request: GenerationRequest, meter: Metered
) -> tuple[Deployment, Result]:
    """The engine's whole generation; a failure as the status a client can act on."""
    try:
        return await state.generation.generate(dep, request, meter)
    except UpstreamError as exc:
        raise upstream_error(exc, dep.name) from None


async def stream_with_fallbacks(
    state: ServerState, dep: Deployment, request: GenerationRequest, meter: Metered
) -> tuple[Deployment, Piece | None, AsyncGenerator[Piece, None]]:
    """The engine's primed stream (nothing is sent to the client before its first piece)."""
    try:
        return await state.generation.stream(dep, request, meter)
    except UpstreamError as exc:
        raise upstream_error(exc, dep.name) from None
