"""``POST /v1/responses`` and the stored responses: OpenAI's Responses protocol over the engine,
through the same cache, admission (keys, budgets, the fair queue), metering and fallbacks as
``/v1/chat/completions`` (``serve/openai/translated.py``); ``file_search`` through the grounded
answer every collection surface shares."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from itertools import chain
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from lamina.engine.deployment import Deployment
from lamina.engine.events import Piece, Result
from lamina.engine.upstream import UpstreamError
from lamina.models.types import Message
from lamina.rag.answer import Answer
from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError, bad_request
from lamina.serve.openai.grounded import GroundedRun, Grounding, ground, grounded_answer
from lamina.serve.openai.responses import json_response, sse_response
from lamina.serve.openai.serving import Metered, client_timeout
from lamina.serve.openai.translated import Live, generate
from lamina.serve.policy.keys import Principal
from lamina.serve.responses import file_search
from lamina.serve.responses.protocol import (
    ItemError,
    ResponsesRequest,
    conversation_of,
    message_item,
    new_id,
    output_items,
    response_object,
)
from lamina.serve.responses.streaming import EventWriter
from lamina.serve.state import ServerState


class Turn:
    """One response under way: its id, the conversation it continues, and how it is kept."""

    def __init__(self, state: ServerState, principal: Principal, body: ResponsesRequest) -> None:
        self.state, self.principal, self.body = state, principal, body
        self.id = new_id("resp")
        self.history: list[Message] = []

    def snapshot(self, model: str) -> functools.partial[dict[str, Any]]:
        return functools.partial(response_object, self.body, self.id, model)

    async def remember(self, response: dict[str, Any]) -> dict[str, Any]:
        if self.body.store:
            conversation = conversation_of(self.history, response["output"])
            await asyncio.to_thread(self.state.responses.put, self.principal.tenant, response, conversation)
        return response


async def create(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    body: ResponsesRequest,
) -> Response:
    turn = Turn(state, principal, body)
    try:
        earlier = await _earlier(state, principal, body.previous_response_id)
        turn.history = body.history(earlier)
        collection = file_search.collection_of(body)
        gen = body.generation_request(body.messages(turn.history))
    except ItemError as exc:
        raise bad_request(str(exc), param=exc.param) from None
    if collection is not None:
        return await _searched(request, ctx, state, principal, dep, turn, collection)
    out = await generate(request, ctx, state, principal, dep, gen, api="responses", stream=body.stream)
    if out.result is not None:
        return await _whole(turn, out.model, out.result, out.headers)
    assert out.live is not None
    return sse_response(_events(turn, out.model, out.live), out.headers)


async def _earlier(state: ServerState, principal: Principal, previous: str | None) -> list[Message]:
    if previous is None:
        return []
    stored = await asyncio.to_thread(state.responses.get, previous, principal.tenant)
    if stored is None:
        raise APIError(
            404,
            f"previous response {previous!r} not found (it may have expired, or was not stored)",
            "invalid_request_error",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return stored.conversation


async def _whole(turn: Turn, model: str, result: Result, headers: dict[str, str]) -> Response:
    """A whole answer (generated, or from the cache) as one response, or replayed as one stream."""
    choice = result.first
    if turn.body.stream:
        writer = EventWriter(turn.snapshot(model))
        calls = [{"index": i, **c} for i, c in enumerate(choice.message.get("tool_calls") or [])]
        piece = Piece({"content": choice.text, "tool_calls": calls})

        async def replay() -> AsyncIterator[bytes]:
            for chunk in chain(writer.start(), writer.piece(piece), writer.close()):
                yield chunk
            response = writer.snapshot(writer.output, result.usage, finish_reason=choice.finish_reason)
            for chunk in writer.finish(await turn.remember(response)):
                yield chunk

        return sse_response(replay(), headers)
    response = turn.snapshot(model)(output_items(choice), result.usage, finish_reason=choice.finish_reason)
    return json_response(await turn.remember(response), headers)


async def _events(turn: Turn, model: str, live: Live) -> AsyncIterator[bytes]:
    writer = EventWriter(turn.snapshot(model))
    for chunk in writer.start():
        yield chunk
    try:
        async for piece in live.pieces():
            for chunk in writer.piece(piece):
                yield chunk
    except UpstreamError as exc:
        yield writer.failed(f"model {model} failed mid-stream: {exc}")
        return
    for chunk in writer.close():
        yield chunk
    choice = live.choice(live.result())
    response = writer.snapshot(writer.output, live.usage, finish_reason=choice.finish_reason)
    for chunk in writer.finish(await turn.remember(response)):
        yield chunk


async def _searched(
    request: Request,
    ctx: RequestContext,
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    turn: Turn,
    collection: str,
) -> Response:
    """``file_search``: the collection searched, then the grounded answer with its citations."""
    try:
        question, turns = file_search.question_of(turn.history)
        narrowed = file_search.filter_of(turn.body)
    except ItemError as exc:
        raise bad_request(str(exc), param=exc.param) from None
    asked = turn.body.generation_request(turn.history)
    grounding = await ground(
        state,
        principal,
        dep,
        collection,
        question,
        base_url=str(request.base_url),
        history=turns,
        asked=asked,
        filter=narrowed,
    )
    searched = file_search.search_item(question, grounding.sources, grounding.links, turn.body)
    if not turn.body.stream or grounding.request is None:
        model, answer = await grounded_answer(state, principal, ctx, dep, grounding, client_timeout(request))
        if not turn.body.stream:
            output = [searched, _answered(answer, grounding)]
            response = turn.snapshot(model)(output, answer.usage)
            return json_response(await turn.remember(response), {})
        return sse_response(_search_events(turn, model, searched, grounding, answer=answer), {})
    run = await GroundedRun.start(
        state, principal, dep, grounding, Metered(ctx, dep.name), client_timeout(request)
    )
    return sse_response(_search_events(turn, run.used.name, searched, grounding, run=run), {})


def _answered(answer: Answer, grounding: Grounding) -> dict[str, Any]:
    return message_item(answer.answer, file_search.citations_of(answer, grounding.links))


SEARCH_EVENTS = (
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.file_search_call.completed",
)


async def _search_events(
    turn: Turn,
    model: str,
    searched: dict[str, Any],
    grounding: Grounding,
    *,
    answer: Answer | None = None,
    run: GroundedRun | None = None,
) -> AsyncIterator[bytes]:
    """The search as a whole item, then the answer's text as the model writes it (or at once, for
    an answer made without a model); its citations when it is complete."""
    writer = EventWriter(turn.snapshot(model))
    for chunk in chain(writer.start(), writer.whole(searched, *SEARCH_EVENTS)):
        yield chunk
    if run is not None:
        try:
            async for text in run.texts():
                for chunk in writer.text(text):
                    yield chunk
        except UpstreamError as exc:
            yield writer.failed(f"model {model} failed mid-stream: {exc}")
            return
        tail, answer = await run.final()
        for chunk in writer.text(tail):
            yield chunk
    else:
        assert answer is not None
        for chunk in writer.text(answer.answer):
            yield chunk
    if writer.output[-1]["type"] != "message":  # an empty answer is still a message
        for chunk in writer.add(message_item("", status="in_progress")):
            yield chunk
    for chunk in chain(writer.annotate(file_search.citations_of(answer, grounding.links)), writer.close()):
        yield chunk
    response = writer.snapshot(writer.output, answer.usage)
    for chunk in writer.finish(await turn.remember(response)):
        yield chunk


async def stored(state: ServerState, principal: Principal, response_id: str) -> dict[str, Any]:
    found = await asyncio.to_thread(state.responses.get, response_id, principal.tenant)
    if found is None:
        raise _missing(response_id)
    return found.response


async def delete(state: ServerState, principal: Principal, response_id: str) -> None:
    if not await asyncio.to_thread(state.responses.delete, response_id, principal.tenant):
        raise _missing(response_id)


def _missing(response_id: str) -> APIError:
    return APIError(
        404,
        f"response {response_id!r} not found",
        "invalid_request_error",
        param="response_id",
        code="not_found",
    )
