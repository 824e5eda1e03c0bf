"""``/v1/chat/completions`` and ``/v1/completions`` straight to a model (no retrieval): the same
cache, admission and live stream as every translated API (``translated.py``), written as OpenAI's
chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import Response

from lamina.engine.deployment import Deployment
from lamina.engine.upstream import UpstreamError
from lamina.serve.context import RequestContext
from lamina.serve.openai.protocol import ChatCompletionRequest, CompletionRequest
from lamina.serve.openai.responses import sse_response, whole_response
from lamina.serve.openai.streaming import DONE, ChunkWriter, error_event
from lamina.serve.openai.translated import EMPTY, Live
from lamina.serve.openai.translated import generate as translated
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
    gen = body.generation_request()
    out = await translated(request, ctx, state, principal, dep, gen, api=gen.kind, stream=body.stream)
    if out.result is not None:
        result = out.result
        return whole_response(
            gen.kind,
            out.model,
            result.choices,
            result.usage,
            stream=body.stream,
            include_usage=body.include_usage,
            headers=out.headers,
        )
    assert out.live is not None
    writer = ChunkWriter(gen.kind, out.model, include_usage=body.include_usage)
    return sse_response(_chunks(writer, out.live, gen.choices), out.headers)


async def _chunks(writer: ChunkWriter, live: Live, choices: int) -> AsyncIterator[bytes]:
    """Each piece passed on as it comes (content, tool-call pieces, logprobs, with its choice's
    index); finish reasons are held back to the end, so a stream cut short never looks finished:
    it ends with an error event and no ``[DONE]``."""
    if writer.kind == "chat":
        for index in range(choices):
            yield writer.role(index)
    try:
        async for piece in live.pieces():
            if piece.delta or piece.logprobs:
                yield writer.delta(piece.delta, None, piece.index, piece.logprobs)
    except UpstreamError as exc:
        yield error_event(f"model {live.model} failed mid-stream: {exc}")
        return
    for choice in live.result().choices or [EMPTY]:
        yield writer.delta({}, choice.finish_reason, choice.index)
    if writer.include_usage:
        yield writer.usage(live.usage)
    yield DONE
