"""What the engine tells whoever meters a generation: tokens, time to first token, the model that
answered, finish reasons, tool calls (names only), and the generation's span (OpenTelemetry GenAI
semantic conventions). The server's request context listens through a subclass (``serve``'s
``Metered``); the library uses ``Meter`` as it is. The engine depends on this, never on HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from lamina.models.types import GenerationRequest, Usage
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

if TYPE_CHECKING:
    from lamina.engine.deployment import Deployment

Cleanup = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class Cleanups:
    """What to run when something is over (a generation, a request), however it ended: a stream
    closed, a queue slot given back, a span ended. Each runs once, in the order registered."""

    _cleanups: list[Cleanup] = field(default_factory=list, repr=False, kw_only=True)

    def on_exit(self, cleanup: Cleanup) -> None:
        self._cleanups.append(cleanup)

    async def close(self) -> None:
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            await cleanup()


class Meter(Cleanups):
    """One generation's account, kept up to date by the engine until ``close``."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model  # the model that answered (a fallback's name if one did)
        self.usage = Usage()
        self.finish_reasons: list[str] = []
        self.tool_calls: list[str] = []
        self.queue_s: float | None = None
        self.upstream_s = 0.0
        self.first_token_s: float | None = None
        self.error_type: str | None = None
        self.span: trace.Span = trace.INVALID_SPAN
        self.upstream_began = time.perf_counter()

    def queued(self, seconds: float) -> None:
        self.queue_s = seconds

    def generation(self, dep: Deployment, request: GenerationRequest, *, stream: bool) -> trace.Span:
        """Open the generation's span (ended with the meter); upstream attempts nest under it."""
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
        self.on_exit(self._end)
        return self.span

    async def _end(self) -> None:
        span = self.span
        if span.is_recording():
            span.set_attribute(RESPONSE_MODEL, self.model)
            span.set_attribute(INPUT_TOKENS, self.usage.prompt_tokens)
            span.set_attribute(OUTPUT_TOKENS, self.usage.completion_tokens)
            if self.finish_reasons:
                span.set_attribute(FINISH_REASONS, self.finish_reasons)
            if self.tool_calls:
                span.set_attribute("lamina.response.tool_calls", self.tool_calls)
            if self.error_type:
                span.set_attribute("error.type", self.error_type)
                span.set_status(trace.StatusCode.ERROR)
        span.end()

    def answered_by(self, model: str) -> None:
        self.model = model

    def upstream(self, seconds: float) -> None:
        """Time the model itself took: what is left of the latency is the gateway's overhead."""
        self.upstream_s += seconds

    def first_token(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.upstream_began
            self.span.set_attribute(TIME_TO_FIRST_CHUNK, round(self.first_token_s, 6))

    def record(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = usage

    def finished(self, reason: str | None) -> None:
        """A choice ended (once per choice)."""
        if reason:
            self.finish_reasons.append(reason)

    def called(self, names: list[str]) -> None:
        """Tools the model called: their names only (arguments may hold personal data)."""
        self.tool_calls.extend(names)

    def failed(self, error_type: str) -> None:
        self.error_type = error_type
