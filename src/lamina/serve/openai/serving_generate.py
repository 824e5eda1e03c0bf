"""``/v1/chat/completions`` and ``/v1/completions`` straight to a model (no retrieval)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import Response

from lamina.engine.deployment import Deployment
from lamina.engine.engine import primed
from lamina.engine.events import Choice, Collector
from lamina.models.types import Usage
from lamina.serve.context import RequestContext
from lamina.serve.openai.protocol import ChatCompletionRequest, CompletionRequest
from lamina.serve.openai.responses import (
    cache_value,
    cached_response,
    framed,
    sse_response,
    whole_response,
)
from lamina.serve.openai.serving import (
    Metered,
    admission,
    client_timeout,
    generate_with_fallbacks,
    stream_with_fallbacks,
)
from lamina.serve.openai.streaming import CACHE_HEADER, ChunkWriter
from lamina.serve.policy.cache import cache_key
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState


async def generate(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ChatCompletionRequest | CompletionRequest,
) -> Response:
    meter = Metered(ctx, dep.name)
    gen = body.generation_request()
    dep.check(gen)  # before the cache: a request the model cannot take is refused every time
    key = None
    if state.cache is not None:
        key = cache_key(principal.tenant, dep.name, gen.kind, gen.params, dep.spec.temperature)
    if key is not None and state.cache is not None and (hit := state.cache.get(key)) is not None:
        return cached_response(ctx, gen.kind, hit, stream=body.stream, include_usage=body.include_usage)
    slot = await admission(state, principal, dep, gen, meter, client_timeout(request))
    headers = {CACHE_HEADER: "miss"} if key is not None else {}
    ctx.cache_miss = key is not None
    if not body.stream:
        used, result = await generate_with_fallbacks(state, dep, gen, meter)
        if key is not None and state.cache is not None:
            state.cache.put(key, cache_value(result, used.name))
        choices, usage = result.choices, result.usage
        return whole_response(
            gen.kind, used.name, choices, usage, stream=False, include_usage=False, headers=headers
        )
    used, first, rest = await stream_with_fallbacks(state, dep, gen, meter)
    writer = ChunkWriter(gen.kind, used.name, include_usage=body.include_usage)
    collected = Collector()

    async def chunks() -> AsyncIterator[bytes]:
        """Each piece passed on as it comes (content, tool-call pieces, logprobs, with its choice's
        index); finish reasons are held back to the end, so a stream cut short never looks finished."""
        if writer.kind == "chat":
            for index in range(gen.choices):
                yield writer.role(index)
        async for piece in primed(first, rest):
            collected.add(piece)
            meter.record(piece.usage)
            if piece.delta or piece.logprobs:
                yield writer.delta(piece.delta, None, piece.index, piece.logprobs)

    async def ending() -> tuple[list[bytes], Usage]:
        result = collected.result()
        closing = []
        for choice in result.choices or [Choice({"role": "assistant", "content": ""}, "stop")]:
            meter.finished(choice.finish_reason)
            meter.called(choice.tool_names)
            closing.append(writer.delta({}, choice.finish_reason, choice.index))
        if key is not None and state.cache is not None:
            state.cache.put(key, cache_value(result, used.name))
        return closing, meter.usage

    return sse_response(framed(writer, meter, slot, chunks(), ending), headers)
