"""``/v1/chat/completions`` and ``/v1/completions`` straight to a model (no retrieval)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from lamina.engine.deployment import Deployment, Slot
from lamina.engine.events import Choice, Collector, Piece, Result
from lamina.engine.upstream import UpstreamError
from lamina.models.base import request_params
from lamina.models.types import Usage
from lamina.serve.context import RequestContext
from lamina.serve.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
)
from lamina.serve.openai.serving import (
    Metered,
    admission,
    client_timeout,
    generate_with_fallbacks,
    stream_with_fallbacks,
)
from lamina.serve.openai.streaming import (
    CACHE_HEADER,
    DONE,
    SSE_HEADERS,
    ChunkWriter,
    completion_id,
    error_event,
    usage_info,
)
from lamina.serve.policy.cache import cache_key
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

Kind = Literal["chat", "completion"]


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
        material = request_params(gen)
        key = cache_key(principal.tenant, dep.name, gen.kind, material, dep.spec.temperature)
    if key is not None and state.cache is not None and (hit := state.cache.get(key)) is not None:
        return _cached(ctx, body, gen.kind, hit)
    slot = await admission(state, principal, dep, gen, meter, client_timeout(request))
    headers = {CACHE_HEADER: "miss"} if key is not None else {}
    ctx.cache_miss = key is not None

    def store(result: Result, model: str) -> None:
        if key is not None and state.cache is not None:
            choices = [asdict(c) for c in result.choices]
            state.cache.put(key, {"choices": choices, "usage": result.usage.to_dict(), "model": model})

    if not body.stream:
        used, result = await generate_with_fallbacks(state, dep, gen, meter)
        store(result, used.name)
        return json_response(completion_response(gen.kind, used.name, result.choices, result.usage), headers)
    used, first, rest = await stream_with_fallbacks(state, dep, gen, meter)
    writer = ChunkWriter(gen.kind, used.name, include_usage=body.include_usage)
    return StreamingResponse(
        _stream(writer, gen.choices, first, rest, meter, slot, store),
        media_type="text/event-stream",
        headers=SSE_HEADERS | headers,
    )


def _cached(
    ctx: RequestContext, body: ChatCompletionRequest | CompletionRequest, kind: Kind, hit: dict[str, Any]
) -> Response:
    """A cached answer: costs nothing, and says so (header, request log)."""
    ctx.cached = True
    ctx.model = hit["model"]
    headers = {CACHE_HEADER: "hit"}
    choices = [Choice(**c) for c in hit["choices"]]
    usage = Usage(hit["usage"]["prompt_tokens"], hit["usage"]["completion_tokens"])
    if not body.stream:
        return json_response(completion_response(kind, hit["model"], choices, usage), headers)
    writer = ChunkWriter(kind, hit["model"], include_usage=body.include_usage)
    return StreamingResponse(
        writer.replay(choices, usage), media_type="text/event-stream", headers=SSE_HEADERS | headers
    )


async def _stream(
    writer: ChunkWriter,
    choices: int,
    first: Piece | None,
    rest: AsyncIterator[Piece],
    meter: Metered,
    slot: Slot,
    store: Callable[[Result, str], None],
) -> AsyncIterator[bytes]:
    """Each piece passed on as it comes (content, tool-call pieces, logprobs, with its choice's
    index); the finish reasons are held back to the end, so a stream cut short never looks finished."""
    collected = Collector()
    try:
        if writer.kind == "chat":
            for index in range(choices):
                yield writer.role(index)
        async for piece in _chain(first, rest):
            collected.add(piece)
            meter.record(piece.usage)
            if piece.delta or piece.logprobs:
                yield writer.delta(piece.delta, None, piece.index, piece.logprobs)
    except UpstreamError as exc:
        meter.failed("upstream_error")
        yield error_event(f"model {slot.model} failed mid-stream: {exc}")
        return
    finally:
        meter.upstream(time.perf_counter() - meter.upstream_began)
        await slot.release()
    result = collected.result()
    for choice in result.choices or [Choice({"role": "assistant", "content": ""}, "stop")]:
        meter.finished(choice.finish_reason)
        meter.called(choice.tool_names)
        yield writer.delta({}, choice.finish_reason, choice.index)
    store(result, writer.model)
    if writer.include_usage:
        yield writer.usage(meter.usage)
    yield DONE


async def _chain(first: Piece | None, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    if first is not None:
        yield first
    async for piece in rest:
        yield piece


def completion_response(
    kind: Kind, model: str, choices: list[Choice], usage: Usage
) -> ChatCompletion | Completion:
    created = int(time.time())
    if kind == "chat":
        return ChatCompletion(
            id=completion_id(kind),
            created=created,
            model=model,
            choices=[
                ChatChoice(
                    index=c.index,
                    message=AssistantMessage(**c.message),
                    logprobs=c.logprobs,
                    finish_reason=c.finish_reason,
                )
                for c in choices
            ],
            usage=usage_info(usage),
        )
    return Completion(
        id=completion_id(kind),
        created=created,
        model=model,
        choices=[
            CompletionChoice(index=c.index, text=c.text, logprobs=c.logprobs, finish_reason=c.finish_reason)
            for c in choices
        ],
        usage=usage_info(usage),
    )


def json_response(body: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """A response model as JSON (serialized by pydantic, without a dict in between)."""
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
