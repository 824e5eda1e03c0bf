"""Grounded chat: ``/v1/chat/completions`` with ``collection`` (or a ``rag:NAME`` model).

Retrieval and packing run in worker threads; generation goes through the same deployment as any
other request (limits, accounting). Raw model text passes through the answer assembler, so what
streams is exactly the final answer, citation markers included; the citations themselves arrive in
the last content chunk, before the usage chunk.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response

from lamina.data.types import doc_id_for
from lamina.engine.deployment import Deployment
from lamina.engine.events import Choice, Result
from lamina.engine.upstream import UpstreamError
from lamina.models.types import Usage, message_text
from lamina.rag.answer import Answer, Answerer
from lamina.rag.citations import find_markers
from lamina.serve.context import RequestContext
from lamina.serve.errors import bad_request
from lamina.serve.jobs.uploads import content_url, public_source
from lamina.serve.openai.protocol import ChatCompletionRequest
from lamina.serve.openai.rag_cache import CachedAnswer, lookup
from lamina.serve.openai.responses import cache_value, cached_response, framed, sse_response, whole_response
from lamina.serve.openai.serving import (
    Metered,
    admission,
    client_timeout,
    stream_with_fallbacks,
    upstream_error,
)
from lamina.serve.openai.streaming import ChunkWriter
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

MEMORY_TURNS = 3
T = TypeVar("T")


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
    coll = await asyncio.to_thread(state.tenants.workspace(principal.tenant).collection, collection)
    cached = await lookup(state, principal, dep, body, coll, question, first_question=not history)
    if cached.hit is not None:
        options = {"stream": body.stream, "include_usage": body.include_usage}
        return cached_response(ctx, "chat", cached.hit, **options, headers=cached.headers)
    headers = cached.headers or {}
    ctx.cache_miss = bool(headers)
    answerer = Answerer(coll, dep.llm, state.settings.rag, k=body.k, memory_turns=MEMORY_TURNS)
    answerer.history = history
    sources, gen_request = await asyncio.to_thread(answerer.prepare, question)
    links = _Links(str(request.base_url), collection, state.tenants.uploads_dir(principal.tenant, collection))
    if gen_request is None:  # nothing relevant, or an answer chosen among the sources: no model call
        await state.limiter.admit(principal, ctx, cost_usd=0.0, tokens=0)
        answer = await asyncio.to_thread(answerer.without_model, question, sources)
        if answer.grounded:  # "nothing relevant" is not kept: the collection may change
            _remember(state, cached, links, answer, dep.name)
        return _answer_response(body, dep.name, answer, links, meter, headers)
    asked = body.generation_request()
    gen_request = replace(
        gen_request,
        temperature=_first(asked.temperature, gen_request.temperature),
        seed=_first(asked.seed, gen_request.seed),
        top_p=_first(asked.top_p, gen_request.top_p),
        max_tokens=_first(asked.max_tokens, gen_request.max_tokens),
        user=asked.user,
    )
    slot = await admission(state, principal, dep, gen_request, meter, client_timeout(request))
    run = answerer.run(question, sources, gen_request)
    used, first, rest = await stream_with_fallbacks(state, dep, gen_request, meter)

    async def texts() -> AsyncIterator[str]:
        """Shown text as the model produces it; stops the model at a lazy stop."""
        pending = [first] if first is not None else []
        while True:
            piece = pending.pop() if pending else await anext(rest, None)
            if piece is None:
                return
            meter.record(piece.usage)
            meter.finished(piece.finish_reason)
            feed = functools.partial(
                run.feed, piece.text, usage=piece.usage, finish_reason=piece.finish_reason
            )
            if shown := await asyncio.to_thread(feed):
                yield shown
            if run.stopped:
                await rest.aclose()
                return

    async def final() -> tuple[str, Answer]:
        tail, answer = await asyncio.to_thread(run.finish, used.name)  # counts usage the stream did not say
        meter.record(answer.usage)
        await slot.release()
        _remember(state, cached, links, answer, used.name)
        return tail, answer

    if not body.stream:
        try:
            async for _ in texts():
                pass
        except UpstreamError as exc:
            raise upstream_error(exc, used.name) from None
        finally:
            meter.upstream(time.perf_counter() - meter.upstream_began)
        _, answer = await final()
        return _answer_response(body, used.name, answer, links, meter, headers)
    writer = ChunkWriter("chat", used.name, include_usage=body.include_usage)

    async def chunks() -> AsyncIterator[bytes]:
        yield writer.role()
        async for text in texts():
            yield writer.delta({"content": text})

    async def ending() -> tuple[list[bytes], Usage]:
        tail, answer = await final()
        return [writer.delta({"content": tail, **links.grounding(answer)}, "stop")], answer.usage

    return sse_response(framed(writer, meter, slot, chunks(), ending), headers)


def _first(value: T | None, default: T | None) -> T | None:
    return default if value is None else value


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
    messages = [m.as_message() for m in body.messages]
    if messages[-1]["role"] != "user" or not message_text(messages[-1]).strip():
        raise bad_request("the last message must be the user's question", param="messages")
    history: list[tuple[str, str]] = []
    asked: str | None = None
    for m in messages[:-1]:
        if m["role"] == "user":
            asked = message_text(m)
        elif m["role"] == "assistant" and asked is not None:
            history.append((asked, message_text(m)))
            asked = None
    return message_text(messages[-1]), history


class _Links:
    """Where a citation points: the original file's content URL, at the cited page."""

    def __init__(self, base_url: str, collection: str, uploads: Path) -> None:
        self.base = base_url
        self.collection = collection
        self.uploads = uploads

    def source_name(self, source: str) -> str:
        return public_source(source, self.uploads)

    def url(self, source: str, page: int | None) -> str:
        return content_url(self.base, self.collection, doc_id_for(source), page)

    def message(self, answer: Answer) -> dict[str, Any]:
        """The assistant message of a grounded answer: its text, citations and annotations."""
        return {"role": "assistant", "content": answer.answer, **self.grounding(answer)}

    def citations(self, answer: Answer) -> list[dict[str, Any]]:
        out = []
        for c in answer.citations:
            d = c.to_dict()
            d.update(
                source=self.source_name(c.source),
                document_id=doc_id_for(c.source),
                url=self.url(c.source, c.page),
            )
            out.append(d)
        return out

    def grounding(self, answer: Answer) -> dict[str, Any]:
        """What a message carries besides its text: citations, OpenAI-style annotations, how it was made."""
        citations = self.citations(answer)
        by_n = {c["n"]: c for c in citations}
        annotations = [
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": marker.start,
                    "end_index": marker.end,
                    "url": by_n[n]["url"],
                    "title": by_n[n]["title"] or by_n[n]["source"],
                },
            }
            for marker in find_markers(answer.answer)
            for n in marker.numbers
            if n in by_n
        ]
        return {
            "citations": citations,
            "annotations": annotations,
            "grounding": {
                "collection": self.collection,
                "grounded": answer.grounded,
                "extractive": answer.extractive,
                "attributed": answer.attributed,
                "found": answer.found,
                "evidence": answer.evidence,
            },
        }


def _answer_response(
    body: ChatCompletionRequest,
    model: str,
    answer: Answer,
    links: _Links,
    meter: Metered,
    headers: dict[str, str] | None = None,
) -> Response:
    meter.record(answer.usage)
    return _message_response(body, model, links.message(answer), answer.usage, headers or {})


def _remember(state: ServerState, cached: CachedAnswer, links: _Links, answer: Answer, model: str) -> None:
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
