"""``/v1/chat/completions`` and ``/v1/completions`` straight to a model (no retrieval)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from lamina.serve.gateway import Deployment, Piece, Slot
from lamina.serve.keys import Principal
from lamina.serve.openai.protocol import ChatCompletionRequest, CompletionRequest
from lamina.serve.openai.serving import Metered, admit, generate_with_fallbacks, stream_with_fallbacks
from lamina.serve.openai.streaming import DONE, SSE_HEADERS, ChunkWriter, completion_id, error_event
from lamina.serve.state import ServerState
from lamina.serve.upstream import UpstreamError

Kind = Literal["chat", "completion"]


async def generate(
    request: Request,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ChatCompletionRequest | CompletionRequest,
    kind: Kind,
) -> JSONResponse | StreamingResponse:
    meter = Metered(request, dep.name)
    params = body.sampling()
    await admit(state, principal, dep, params, request.state)
    slot = dep.slot(request.state)
    if not body.stream:
        used, result = await generate_with_fallbacks(state, dep, kind, params, meter)
        meter.record(result.usage)
        usage = result.usage.to_dict()
        return JSONResponse(_response(kind, used.name, result.message, result.finish_reason, usage))
    used, first, rest = await stream_with_fallbacks(state, dep, kind, params, meter)
    writer = ChunkWriter(kind, used.name, include_usage=body.include_usage)
    return StreamingResponse(
        _stream(writer, first, rest, meter, slot), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _stream(
    writer: ChunkWriter, first: Piece | None, rest: AsyncIterator[Piece], meter: Metered, slot: Slot
) -> AsyncIterator[bytes]:
    finish: str | None = None
    try:
        if writer.kind == "chat":
            yield writer.role()
        async for piece in _chain(first, rest):
            meter.record(piece.usage)
            if piece.delta:
                yield writer.delta(piece.delta)
            finish = piece.finish_reason or finish
    except UpstreamError as exc:
        meter.failed("upstream_error")
        yield error_event(f"model {slot.model} failed mid-stream: {exc}")
        return
    finally:
        meter.upstream(time.perf_counter() - meter.upstream_began)
        await slot.release()
    yield writer.delta({}, finish or "stop")
    if writer.include_usage:
        yield writer.usage(meter.usage)
    yield DONE


async def _chain(first: Piece | None, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    if first is not None:
        yield first
    async for piece in rest:
        yield piece


def _response(
    kind: Kind, model: str, message: dict[str, Any], finish_reason: str, usage: dict[str, int]
) -> dict[str, Any]:
    created = int(time.time())
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        obj = "chat.completion"
    else:
        choice = {
            "index": 0,
            "text": message.get("content") or "",
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        obj = "text_completion"
    return {
        "id": completion_id(kind),
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


chat_response = _response
