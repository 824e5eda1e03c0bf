"""How every generation endpoint answers, in one place: whole answers as JSON or replayed as a
stream (a model's, a cache's, or decided without a model), and the frame of a live stream (a
failure mid-stream ends with an error event and no ``[DONE]``; the queue slot is given back however
it ends; then the closing chunks, the usage chunk when asked, ``[DONE]``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any, Literal

from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from lamina.engine.deployment import Slot
from lamina.engine.events import Choice, Result
from lamina.engine.upstream import UpstreamError
from lamina.models.types import Usage
from lamina.serve.context import RequestContext
from lamina.serve.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    Completion,
    CompletionChoice,
)
from lamina.serve.openai.serving import Metered
from lamina.serve.openai.streaming import (
    CACHE_HEADER,
    DONE,
    SSE_HEADERS,
    ChunkWriter,
    completion_id,
    error_event,
    usage_info,
)

Kind = Literal["chat", "completion"]
Ending = Callable[[], Awaitable[tuple[list[bytes], Usage]]]


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


def json_response(body: BaseModel | dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """A response model as JSON (serialized by pydantic, without a dict in between), or a dict."""
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    return Response(text, media_type="application/json", headers=headers)


def sse_response(events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS | (headers or {}))


def whole_response(
    kind: Kind,
    model: str,
    choices: list[Choice],
    usage: Usage,
    *,
    stream: bool,
    include_usage: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    """Whole answers as one JSON response, or replayed as one stream when the client streams."""
    if not stream:
        return json_response(completion_response(kind, model, choices, usage), headers)
    writer = ChunkWriter(kind, model, include_usage=include_usage)
    return sse_response(writer.replay(choices, usage), headers)


def cache_value(result: Result, model: str) -> dict[str, Any]:
    """What a cache keeps of an answer (every choice, tool calls and logprobs included)."""
    return {"choices": [asdict(c) for c in result.choices], "usage": result.usage.to_dict(), "model": model}


def cached_response(
    ctx: RequestContext,
    kind: Kind,
    hit: dict[str, Any],
    *,
    stream: bool,
    include_usage: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    """A cached answer (``cache_value``'s form): costs nothing, and says so (header, request log)."""
    ctx.cached = True
    ctx.model = hit["model"]
    result = cached_result(hit)
    headers = {CACHE_HEADER: "hit"} | (headers or {})
    return whole_response(
        kind,
        hit["model"],
        result.choices,
        result.usage,
        stream=stream,
        include_usage=include_usage,
        headers=headers,
    )


def cached_result(hit: dict[str, Any]) -> Result:
    """A cached answer (``cache_value``'s form) as the engine's result."""
    usage = Usage(hit["usage"]["prompt_tokens"], hit["usage"]["completion_tokens"])
    return Result([Choice(**c) for c in hit["choices"]], usage)


async def framed(
    writer: ChunkWriter, meter: Metered, slot: Slot, chunks: AsyncIterator[bytes], ending: Ending
) -> AsyncIterator[bytes]:
    """A live stream: ``chunks`` as they come, then what ``ending`` gives (the closing chunks and
    the usage) once the model is done; the frame every streamed generation shares."""
    try:
        async for chunk in chunks:
            yield chunk
        closing, usage = await ending()
    except UpstreamError as exc:
        meter.failed("upstream_error")
        yield error_event(f"model {slot.model} failed mid-stream: {exc}")
        return
    finally:
        meter.upstream(time.perf_counter() - meter.upstream_began)
        await slot.release()
    for chunk in closing:
        yield chunk
    if writer.include_usage:
        yield writer.usage(usage)
    yield DONE
