"""Steps every generation request goes through: resolve the model, check the key may use it, take
an in-flight slot, and map upstream failures to the status a client can act on.

A stream is *primed* before the response starts: its first piece is awaited first, so a model that
is down or refuses the request gives a real HTTP error, not a 200 followed by an error event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request

from lamina.models.types import Usage
from lamina.serve.errors import APIError
from lamina.serve.gateway import Deployment, Kind, Piece, Result
from lamina.serve.keys import Principal
from lamina.serve.limits import worst_case_tokens
from lamina.serve.middleware import on_exit
from lamina.serve.routing import retryable
from lamina.serve.state import ServerState
from lamina.serve.upstream import UpstreamError

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
    """Notes tokens and time to first token in ``request.state`` for the request log."""

    def __init__(self, request: Request, model: str) -> None:
        self.state = request.state
        self.started = time.perf_counter()
        self.upstream_began = self.started
        self.state.model = model
        self.usage = Usage()

    def upstream(self, seconds: float) -> None:
        """Time the model itself took: what is left of the latency is the gateway's overhead."""
        self.state.upstream_ms = getattr(self.state, "upstream_ms", 0.0) + seconds * 1000

    def first_token(self) -> None:
        if getattr(self.state, "ttft_ms", None) is None:
            self.state.ttft_ms = round((time.perf_counter() - self.started) * 1000, 3)

    def record(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = usage
            self.state.prompt_tokens = usage.prompt_tokens
            self.state.completion_tokens = usage.completion_tokens

    def failed(self, error_type: str) -> None:
        self.state.error_type = error_type


async def admit(
    state: ServerState, principal: Principal, dep: Deployment, params: dict[str, Any], request_state: Any
) -> None:
    """Reserve the worst case of this generation (priced as the dearest model of its fallback chain)."""
    prompt, completion = worst_case_tokens(params, dep.spec.max_tokens)
    specs = [state.gateway.spec(n) for n in (dep.name, *dep.spec.fallbacks)]
    cost = (
        prompt * max(s.price_input_per_mtok for s in specs)
        + completion * max(s.price_output_per_mtok for s in specs)
    ) / 1_000_000
    await state.limiter.admit(principal, request_state, cost_usd=cost, tokens=prompt + completion)


async def generate_with_fallbacks(
    state: ServerState, dep: Deployment, kind: Kind, params: dict[str, Any], meter: Metered
) -> tuple[Deployment, Result]:
    """A whole generation from the model, or else from its fallbacks in order."""
    last: UpstreamError | None = None
    began = time.perf_counter()
    try:
        for candidate in await state.gateway.chain(dep.name):
            try:
                result = await candidate.generate(kind, params)
            except UpstreamError as exc:
                last = exc
                if not retryable(exc):
                    break  # the request is at fault: another model would refuse it too
                continue
            meter.state.model = candidate.name
            return candidate, result
    finally:
        meter.upstream(time.perf_counter() - began)
    assert last is not None
    raise upstream_error(last, dep.name)


async def stream_with_fallbacks(
    state: ServerState, dep: Deployment, kind: Kind, params: dict[str, Any], meter: Metered
) -> tuple[Deployment, Piece | None, AsyncGenerator[Piece, None]]:
    """A stream that has produced its first piece (so nothing was sent to the client yet), from the
    model or its fallbacks; the stream is closed when the request ends, however it ends."""
    last: UpstreamError | None = None
    meter.upstream_began = time.perf_counter()
    for candidate in await state.gateway.chain(dep.name):
        pieces = candidate.stream(kind, params)
        on_exit(meter.state, pieces.aclose)
        try:
            first = await anext(pieces)
        except StopAsyncIteration:
            first = None
        except UpstreamError as exc:
            await pieces.aclose()
            last = exc
            if not retryable(exc):
                break
            continue
        meter.state.model = candidate.name
        meter.first_token()
        return candidate, first, pieces
    assert last is not None
    raise upstream_error(last, dep.name)
