"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's protocol over the engine,
through the same admission (keys, budgets, the fair queue), cache, metering and fallbacks as
``/v1/chat/completions``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import Response

from lamina.engine.deployment import Deployment
from lamina.engine.events import Result
from lamina.engine.upstream import UpstreamError
from lamina.models.types import message_text
from lamina.serve.anthropic.protocol import (
    CountTokensRequest,
    MessageResponse,
    MessagesRequest,
    TokenCount,
    content_blocks,
    message_id,
    stop_reason,
)
from lamina.serve.anthropic.protocol import Usage as TokenUsage
from lamina.serve.anthropic.streaming import BlockWriter, error_event
from lamina.serve.context import RequestContext
from lamina.serve.openai.responses import json_response, sse_response
from lamina.serve.openai.translated import generate
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState


async def messages(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: MessagesRequest,
) -> Response:
    gen = body.generation_request()
    out = await generate(request, ctx, state, principal, dep, gen, api="anthropic", stream=body.stream)
    if out.result is not None:
        return _whole(out.model, out.result, stream=body.stream, headers=out.headers)
    live = out.live
    assert live is not None
    writer = BlockWriter(out.model)

    async def events() -> AsyncIterator[bytes]:
        yield writer.start()
        try:
            async for piece in live.pieces():
                for chunk in writer.piece(piece):
                    yield chunk
        except UpstreamError as exc:
            yield error_event(f"model {out.model} failed mid-stream: {exc}")
            return
        for chunk in writer.finish(live.choice(live.result()).finish_reason, live.usage):
            yield chunk

    return sse_response(events(), out.headers)


def _whole(model: str, result: Result, *, stream: bool, headers: dict[str, str]) -> Response:
    """A whole answer as one message, or replayed as one stream."""
    if stream:
        return sse_response(BlockWriter(model).replay(result), headers)
    choice = result.first
    message = MessageResponse(
        id=message_id(),
        model=model,
        content=content_blocks(choice),
        stop_reason=stop_reason(choice.finish_reason),
        usage=TokenUsage(
            input_tokens=result.usage.prompt_tokens, output_tokens=result.usage.completion_tokens
        ),
    )
    return json_response(message, headers)


async def count_tokens(dep: Deployment, body: CountTokensRequest) -> TokenCount:
    """The prompt's tokens in the model's own tokenizer: every message (role and text) and the tools."""
    gen = body.generation_request()
    text = "\n".join(f"{m['role']}: {message_text(m)}" for m in gen.messages or [])
    if gen.tools:
        text += "\n" + json.dumps(gen.tools)
    return TokenCount(input_tokens=await asyncio.to_thread(dep.llm.count_tokens, text))
