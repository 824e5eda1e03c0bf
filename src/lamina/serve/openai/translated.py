"""Generation for the APIs translated onto the engine (Anthropic's Messages, OpenAI's Responses):
the cache, admission (keys, budgets, the fair queue), fallbacks and metering of
``/v1/chat/completions``, written once. A protocol layer gets back either a whole ``Result`` (a
cache hit, or generated) or a ``Live`` stream of the engine's pieces, and only writes its own
shapes and events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace

from fastapi import Request

from lamina.engine.deployment import Deployment, Slot
from lamina.engine.engine import primed
from lamina.engine.events import Choice, Collector, Piece, Result
from lamina.engine.upstream import UpstreamError
from lamina.models.types import GenerationRequest, Usage
from lamina.serve.context import RequestContext
from lamina.serve.openai.responses import cache_value, cached_result
from lamina.serve.openai.serving import (
    Metered,
    admission,
    client_timeout,
    generate_with_fallbacks,
    stream_with_fallbacks,
)
from lamina.serve.openai.streaming import CACHE_HEADER
from lamina.serve.policy.cache import cache_key
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

SESSION_HEADER = "x-session-id"

EMPTY = Choice({"role": "assistant", "content": ""}, "stop")


@dataclass
class Live:
    """A live stream of the first choice's pieces. Iterating meters each piece; an upstream failure
    is marked on the meter and raised for the protocol to write its own error event; the queue slot
    is given back however it ends, and a finished answer is kept in the cache."""

    state: ServerState
    meter: Metered
    slot: Slot
    first: Piece | None
    rest: AsyncGenerator[Piece, None]
    cache_key: str | None
    model: str
    collected: Collector = field(default_factory=Collector)

    async def pieces(self) -> AsyncIterator[Piece]:
        try:
            async for piece in primed(self.first, self.rest):
                self.collected.add(piece)
                self.meter.record(piece.usage)
                yield piece
        except UpstreamError:
            self.meter.failed("upstream_error")
            raise
        finally:
            self.meter.upstream(time.perf_counter() - self.meter.upstream_began)
            await self.slot.release()
        result = self.collected.result()
        for choice in result.choices or [EMPTY]:
            self.meter.finished(choice.finish_reason)
            self.meter.called(choice.tool_names)
        if self.cache_key is not None and self.state.cache is not None:
            self.state.cache.put(self.cache_key, cache_value(result, self.model))

    @staticmethod
    def choice(result: Result) -> Choice:
        return result.first if result.choices else EMPTY

    @property
    def usage(self) -> Usage:
        return self.meter.usage

    def result(self) -> Result:
        """What the stream said, once it has ended."""
        return self.collected.result()


@dataclass
class Generated:
    """What a translated endpoint writes: a whole ``result``, or a ``live`` stream."""

    model: str
    headers: dict[str, str]
    result: Result | None = None
    live: Live | None = None


async def generate(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    gen: GenerationRequest,
    *,
    api: str,
    stream: bool,
) -> Generated:
    """Answer ``gen`` from the cache (keyed on the tenant, the model and ``api``), or through the
    engine: whole, or as a primed live stream (a model that is down is an HTTP error, not an event).
    An ``x-session-id`` header keeps a conversation on one endpoint (``routing = "session"``)."""
    dep.check(gen)
    if session := request.headers.get(SESSION_HEADER, "")[:200]:
        gen = replace(gen, session=session)
    meter = Metered(ctx, dep.name)
    key = None
    if state.cache is not None:
        key = cache_key(principal.tenant, dep.name, api, gen.params, dep.spec.temperature)
    if key is not None and state.cache is not None and (hit := state.cache.get(key)) is not None:
        ctx.cached, ctx.model = True, str(hit["model"])
        return Generated(str(hit["model"]), {CACHE_HEADER: "hit"}, result=cached_result(hit))
    slot = await admission(state, principal, dep, gen, meter, client_timeout(request))
    headers = {CACHE_HEADER: "miss"} if key is not None else {}
    ctx.cache_miss = key is not None
    if not stream:
        used, result = await generate_with_fallbacks(state, dep, gen, meter)
        if key is not None and state.cache is not None:
            state.cache.put(key, cache_value(result, used.name))
        return Generated(used.name, headers, result=result)
    used, first, rest = await stream_with_fallbacks(state, dep, gen, meter)
    return Generated(used.name, headers, live=Live(state, meter, slot, first, rest, key, used.name))
