"""The one way Lamina generates: a request to a model, answered by it or by its fallbacks in order,
whole or as a stream that has already produced its first piece (so a caller has sent nothing yet
when a model fails). The server's endpoints drive it from their event loop; the library, the CLI
and the evals through ``SyncEngine`` (``sync.py``), as vLLM's ``LLM`` wraps its engine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator

from opentelemetry import trace

from lamina.config import Settings
from lamina.engine.deployment import Deployment
from lamina.engine.events import Piece, Result
from lamina.engine.gateway import ModelGateway
from lamina.engine.meter import Meter
from lamina.engine.routing import retryable
from lamina.engine.upstream import UpstreamError
from lamina.models.registry import ModelRegistry
from lamina.models.types import GenerationRequest


class Engine:
    """Generation over the configured models (``ModelGateway``), with fallbacks."""

    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.gateway = ModelGateway(settings, registry or ModelRegistry(settings))

    async def deployment(self, model: str | None = None) -> Deployment:
        return await self.gateway.get(model or self.settings.default_model)

    async def chain(self, dep: Deployment, request: GenerationRequest) -> list[Deployment]:
        """The model and those of its fallbacks that can take the request (a text-only fallback is
        skipped for an image, not sent it without the image)."""
        chain = await self.gateway.chain(dep.name)
        return [dep, *(d for d in chain[1:] if request.needs <= set(d.can))]

    async def generate(
        self, dep: Deployment, request: GenerationRequest, meter: Meter
    ) -> tuple[Deployment, Result]:
        """A whole generation from the model, or else from its fallbacks in order; the last
        failure is raised when none answers."""
        last: UpstreamError | None = None
        began = time.perf_counter()
        span = meter.generation(dep, request, stream=False)
        try:
            for candidate in await self.chain(dep, request):
                try:
                    with trace.use_span(span, end_on_exit=False):
                        result = await candidate.generate(request)
                except UpstreamError as exc:
                    last = exc
                    if not retryable(exc):
                        break  # the request is at fault: another model would refuse it too
                    continue
                meter.answered_by(candidate.name)
                meter.record(result.usage)
                for choice in result.choices:
                    meter.finished(choice.finish_reason)
                    meter.called(choice.tool_names)
                return candidate, result
        finally:
            meter.upstream(time.perf_counter() - began)
        assert last is not None
        raise last

    async def stream(
        self, dep: Deployment, request: GenerationRequest, meter: Meter
    ) -> tuple[Deployment, Piece | None, AsyncGenerator[Piece, None]]:
        """A stream that has produced its first piece, from the model or its fallbacks; the stream
        is closed when the meter closes, however the generation ends."""
        last: UpstreamError | None = None
        span = meter.generation(dep, request, stream=True)
        for candidate in await self.chain(dep, request):
            pieces = candidate.stream(request)
            meter.on_exit(pieces.aclose)
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
            meter.answered_by(candidate.name)
            meter.first_token()
            return candidate, first, pieces
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self.gateway.aclose()


async def primed(first: Piece | None, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    """Every piece of a stream ``Engine.stream`` primed: the first, then the rest."""
    if first is not None:
        yield first
    async for piece in rest:
        yield piece
