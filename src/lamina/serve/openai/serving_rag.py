"""Grounded chat: ``/v1/chat/completions`` with ``collection`` (or a ``rag:NAME`` model).

Retrieval and packing run in worker threads; generation goes through the same deployment as any
other request (limits, accounting). Raw model text passes through the answer assembler, so what
streams is exactly the final answer, citation markers included; the citations themselves arrive in
the last content chunk, before the usage chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from lamina.engine.deployment import Deployment
from lamina.engine.events import Choice, Result
from lamina.models.types import Usage
from lamina.rag.answer import Answer
from lamina.serve.context import RequestContext
from lamina.serve.errors import bad_request
from lamina.serve.openai.grounded import (
    GroundedRun,
    Links,
    ground,
    grounded_answer,
    open_collection,
    question_and_turns,
)
from lamina.serve.openai.protocol import ChatCompletionRequest
from lamina.serve.openai.rag_cache import CachedAnswer, lookup
from lamina.serve.openai.responses import cache_value, cached_response, framed, sse_response, whole_response
from lamina.serve.openai.serving import Metered, client_timeout
from lamina.serve.openai.streaming import ChunkWriter
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState


async def grounded_chat(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ChatCompletionRequest,
    collection: str,
) -> Response:
    _grounded_only(body)
    meter = Metered(ctx, dep.name)
    question, history = _conversation(body)
    coll = await open_collection(state, principal, collection)
    cached = await lookup(state, principal, dep, body, coll, question, first_question=not history)
    if cached.hit is not None:
        options = {"stream": body.stream, "include_usage": body.include_usage}
        return cached_response(ctx, "chat", cached.hit, **options, headers=cached.headers)
    headers = cached.headers or {}
    ctx.cache_miss = bool(headers)
    grounding = await ground(
        state,
        principal,
        dep,
        coll,
        question,
        base_url=str(request.base_url),
        history=history,
        k=body.k,
        asked=body.generation_request(),
        filter=body.filter,
    )
    links = grounding.links
    if grounding.request is None:  # nothing relevant, or an answer chosen among the sources: no model call
        name, answer = await grounded_answer(state, principal, ctx, dep, grounding)
        if answer.grounded:  # "nothing relevant" is not kept: the collection may change
            _remember(state, cached, links, answer, name)
        return _answer_response(body, name, answer, links, headers)
    run = await GroundedRun.start(state, principal, dep, grounding, meter, client_timeout(request))
    if not body.stream:
        answer = await run.whole()
        _remember(state, cached, links, answer, run.used.name)
        return _answer_response(body, run.used.name, answer, links, headers)
    writer = ChunkWriter("chat", run.used.name, include_usage=body.include_usage)

    async def chunks() -> AsyncIterator[bytes]:
        yield writer.role()
        async for text in run.texts():
            yield writer.delta({"content": text})

    async def ending() -> tuple[list[bytes], Usage]:
        tail, answer = await run.final()
        _remember(state, cached, links, answer, run.used.name)
        return [writer.delta({"content": tail, **links.grounding(answer)}, "stop")], answer.usage

    return sse_response(framed(writer, meter, run.slot, chunks(), ending), headers)


def _grounded_only(body: ChatCompletionRequest) -> None:
    """What a grounded answer cannot honour is refused, never dropped: it is one answer, assembled
    and checked against the sources, so there are no n of them, no raw token logprobs, and (for
    now) no tools; an agent gets the collection as a tool instead (MCP, search API)."""
    unsupported = {
        "tools": bool(body.tools) or any(m.tool_calls or m.role == "tool" for m in body.messages),
        "n": body.n > 1,
        "logprobs": bool(body.logprobs),
        "response_format": body.response_format is not None,
    }
    for param, asked in unsupported.items():
        if asked:
            raise bad_request(
                f"{param} cannot be combined with a collection (a grounded answer is one text, checked "
                "against the sources); send it without collection, or search the collection first",
                param=param,
            )


def _conversation(body: ChatCompletionRequest) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last user message) and earlier (question, answer) turns, for follow-ups."""
    found = question_and_turns([m.as_message() for m in body.messages])
    if found is None:
        raise bad_request("the last message must be the user's question", param="messages")
    return found


def _answer_response(
    body: ChatCompletionRequest, model: str, answer: Answer, links: Links, headers: dict[str, str]
) -> Response:
    return _message_response(body, model, links.message(answer), answer.usage, headers or {})


def _remember(state: ServerState, cached: CachedAnswer, links: Links, answer: Answer, model: str) -> None:
    """Keep an answer for the response and semantic caches (an empty one is not worth keeping)."""
    if answer.answer:
        result = Result([Choice(links.message(answer), "stop")], answer.usage)
        cached.store(state, cache_value(result, model))


def _message_response(
    body: ChatCompletionRequest, model: str, message: dict[str, Any], usage: Usage, headers: dict[str, str]
) -> Response:
    """A whole answer, as one response or as one replayed stream (citations in its content chunk)."""
    options = {"stream": body.stream, "include_usage": body.include_usage}
    return whole_response("chat", model, [Choice(message, "stop")], usage, **options, headers=headers)
