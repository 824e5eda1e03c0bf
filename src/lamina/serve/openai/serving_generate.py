"""``/v1/chat/completions`` and ``/v1/completions`` straight to a model (no retrieval)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

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
    UsageInfo,
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
)
from lamina.serve.policy.cache import cache_key
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState
from lamina.serve.upstreams.gateway import Deployment, Piece, Slot
from lamina.serve.upstreams.upstream import UpstreamError

Kind = Literal["chat", "completion"]


async def generate(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ChatCompletionRequest | CompletionRequest,
    kind: Kind,
) -> Response:
    meter = Metered(ctx, dep.name)
    params = body.sampling()
    key = cache_key(principal.tenant, dep.name, kind, params, dep.spec.temperature) if state.cache else None
    if key is not None and state.cache is not None and (hit := state.cache.get(key)) is not None:
        return _cached(ctx, body, kind, hit)
    slot = await admission(state, principal, dep, params, ctx, client_timeout(request))
    headers = {CACHE_HEADER: "miss"} if key is not None else {}
    ctx.cache_miss = key is not None

    def store(message: dict[str, Any], finish: str, usage: Usage, model: str) -> None:
        if key is not None and state.cache is not None and set(message) <= {"role", "content"}:
            state.cache.put(
                key, {"message": message, "finish_reason": finish, "usage": usage.to_dict(), "model": model}
            )

    if not body.stream:
        used, result = await generate_with_fallbacks(state, dep, kind, params, meter)
        meter.record(result.usage)
        store(result.message, result.finish_reason, result.usage, used.name)
        usage = result.usage.to_dict()
        response = completion_response(kind, used.name, result.message, result.finish_reason, usage)
        return json_response(response, headers)
    used, first, rest = await stream_with_fallbacks(state, dep, kind, params, meter)
    writer = ChunkWriter(kind, used.name, include_usage=body.include_usage)
    return StreamingResponse(
        _stream(writer, first, rest, meter, slot, store),
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
    if not body.stream:
        return json_response(
            completion_response(kind, hit["model"], hit["message"], hit["finish_reason"], hit["usage"]),
            headers,
        )
    writer = ChunkWriter(kind, hit["model"], include_usage=body.include_usage)
    events = writer.replay(
        {"content": hit["message"].get("content") or ""},
        hit["finish_reason"],
        Usage(hit["usage"]["prompt_tokens"], hit["usage"]["completion_tokens"]),
    )
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS | headers)


async def _stream(
    writer: ChunkWriter,
    first: Piece | None,
    rest: AsyncIterator[Piece],
    meter: Metered,
    slot: Slot,
    store: Callable[[dict[str, Any], str, Usage, str], None],
) -> AsyncIterator[bytes]:
    finish: str | None = None
    text: list[str] = []
    plain = True  # only content: a stream with tool calls is not cached
    try:
        if writer.kind == "chat":
            yield writer.role()
        async for piece in _chain(first, rest):
            meter.record(piece.usage)
            if piece.delta:
                yield writer.delta(piece.delta)
                text.append(piece.text)
                plain = plain and set(piece.delta) <= {"content"}
            finish = piece.finish_reason or finish
        meter.finished(finish)
    except UpstreamError as exc:
        meter.failed("upstream_error")
        yield error_event(f"model {slot.model} failed mid-stream: {exc}")
        return
    finally:
        meter.upstream(time.perf_counter() - meter.upstream_began)
        await slot.release()
    yield writer.delta({}, finish or "stop")
    if plain:
        store({"role": "assistant", "content": "".join(text)}, finish or "stop", meter.usage, writer.model)
    if writer.include_usage:
        yield writer.usage(meter.usage)
    yield DONE


async def _chain(first: Piece | None, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    if first is not None:
        yield first
    async for piece in rest:
        yield piece


def completion_response(
    kind: Kind, model: str, message: dict[str, Any], finish_reason: str, usage: dict[str, int]
) -> ChatCompletion | Completion:
    created = int(time.time())
    if kind == "chat":
        return ChatCompletion(
            id=completion_id(kind),
            created=created,
            model=model,
            choices=[ChatChoice(message=AssistantMessage(**message), finish_reason=finish_reason)],
            usage=UsageInfo(**usage),
        )
    return Completion(
        id=completion_id(kind),
        created=created,
        model=model,
        choices=[CompletionChoice(text=message.get("content") or "", finish_reason=finish_reason)],
        usage=UsageInfo(**usage),
    )


def json_response(body: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """A response model as JSON (serialized by pydantic, without a dict in between)."""
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
