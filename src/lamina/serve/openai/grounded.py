"""One grounded answer through the engine, for every surface that answers from a collection: grounded
chat (``/v1/chat/completions`` with ``collection``), the Responses API's ``file_search`` tool and the
MCP ``answer`` tool.

``ground`` opens the tenant's collection and finds the sources; ``GroundedRun`` then writes the
answer: the same admission (budgets, the fair queue) as any generation, the model's text through the
answer assembler (so what a client sees is exactly the final answer, citation markers included), and
the usage the stream did not say counted at the end. A question nothing in the collection answers,
or one answered by choosing among the sources, needs no model call at all.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from lamina.data.collection import Collection
from lamina.data.types import doc_id_for
from lamina.engine.deployment import Deployment, Slot
from lamina.engine.events import Piece
from lamina.engine.upstream import UpstreamError
from lamina.models.types import GenerationRequest, Message, message_text
from lamina.rag.answer import Answer, Answerer, AnswerRun
from lamina.rag.citations import find_markers
from lamina.rag.context import Source
from lamina.serve.context import RequestContext
from lamina.serve.jobs.uploads import content_url, public_source
from lamina.serve.openai.serving import (
    Metered,
    admission,
    stream_with_fallbacks,
    upstream_error,
)
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import where_for
from lamina.serve.state import ServerState

MEMORY_TURNS = 3
T = TypeVar("T")


class Links:
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


@dataclass
class Grounding:
    """A question about a collection, its sources found: ready to answer."""

    collection: Collection
    links: Links
    answerer: Answerer
    question: str
    sources: list[Source]
    request: GenerationRequest | None  # None: the answer needs no model


async def open_collection(state: ServerState, principal: Principal, name: str) -> Collection:
    """The tenant's collection (another tenant's is a 404, as a missing one)."""
    return await asyncio.to_thread(state.tenants.workspace(principal.tenant).collection, name)


async def ground(
    state: ServerState,
    principal: Principal,
    dep: Deployment,
    collection: str | Collection,
    question: str,
    *,
    base_url: str,
    history: list[tuple[str, str]] | None = None,
    k: int | None = None,
    asked: GenerationRequest | None = None,
    filter: Mapping[str, Any] | None = None,
) -> Grounding:
    """Find the sources of ``question`` among the documents the key may read (and ``filter``
    keeps); the generation that will answer it takes the sampling parameters a client ``asked``
    for over the collection's defaults."""
    where = where_for(principal, filter=filter)
    coll = (
        collection
        if isinstance(collection, Collection)
        else await open_collection(state, principal, collection)
    )
    answerer = Answerer(coll, dep.llm, state.settings.rag, k=k, memory_turns=MEMORY_TURNS, where=where)
    answerer.history = history or []
    sources, request = await asyncio.to_thread(answerer.prepare, question)
    if request is not None and asked is not None:
        request = replace(
            request,
            temperature=_first(asked.temperature, request.temperature),
            seed=_first(asked.seed, request.seed),
            top_p=_first(asked.top_p, request.top_p),
            max_tokens=_first(asked.max_tokens, request.max_tokens),
            user=asked.user,
        )
    uploads = state.tenants.uploads_dir(principal.tenant, coll.name)
    return Grounding(coll, Links(base_url, coll.name, uploads), answerer, question, sources, request)


def question_and_turns(messages: list[Message]) -> tuple[str, list[tuple[str, str]]] | None:
    """The question (the last message, the user's) and earlier (question, answer) turns, for
    follow-ups; None when the conversation does not end with a question."""
    if not messages or messages[-1]["role"] != "user" or not message_text(messages[-1]).strip():
        return None
    turns: list[tuple[str, str]] = []
    asked: str | None = None
    for m in messages[:-1]:
        if m["role"] == "user":
            asked = message_text(m)
        elif m["role"] == "assistant" and asked is not None:
            turns.append((asked, message_text(m)))
            asked = None
    return message_text(messages[-1]), turns


def _first(value: T | None, default: T | None) -> T | None:
    return default if value is None else value


@dataclass
class GroundedRun:
    """The model writing one grounded answer: ``texts`` streams what is shown, ``final`` ends it."""

    state: ServerState
    grounding: Grounding
    meter: Metered
    slot: Slot
    used: Deployment
    run: AnswerRun
    first: Piece | None
    rest: AsyncGenerator[Piece, None]
    _pending: list[Piece] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        state: ServerState,
        principal: Principal,
        dep: Deployment,
        grounding: Grounding,
        meter: Metered,
        timeout_s: float | None,
    ) -> GroundedRun:
        """Admission (budgets, the fair queue) and the engine's primed stream."""
        request = grounding.request
        if request is None:
            raise ValueError("this grounding needs no model (see Grounding.request)")
        slot = await admission(state, principal, dep, request, meter, timeout_s)
        run = grounding.answerer.run(grounding.question, grounding.sources, request)
        used, first, rest = await stream_with_fallbacks(state, dep, request, meter)
        return cls(state, grounding, meter, slot, used, run, first, rest)

    async def texts(self) -> AsyncIterator[str]:
        """Shown text as the model produces it; stops the model at a lazy stop."""
        pending = [self.first] if self.first is not None else []
        while True:
            piece = pending.pop() if pending else await anext(self.rest, None)
            if piece is None:
                return
            self.meter.record(piece.usage)
            self.meter.finished(piece.finish_reason)
            feed = functools.partial(
                self.run.feed, piece.text, usage=piece.usage, finish_reason=piece.finish_reason
            )
            if shown := await asyncio.to_thread(feed):
                yield shown
            if self.run.stopped:
                await self.rest.aclose()
                return

    async def final(self) -> tuple[str, Answer]:
        """The text still to show and the whole answer; counts the usage the stream did not say."""
        tail, answer = await asyncio.to_thread(self.run.finish, self.used.name)
        self.meter.record(answer.usage)
        await self.slot.release()
        return tail, answer

    async def whole(self) -> Answer:
        """The answer, read to its end; a failed model as the status a client can act on."""
        try:
            async for _ in self.texts():
                pass
        except UpstreamError as exc:
            raise upstream_error(exc, self.used.name) from None
        finally:
            self.meter.upstream(time.perf_counter() - self.meter.upstream_began)
        return (await self.final())[1]


async def grounded_answer(
    state: ServerState,
    principal: Principal,
    ctx: RequestContext,
    dep: Deployment,
    grounding: Grounding,
    timeout_s: float | None = None,
) -> tuple[str, Answer]:
    """The whole answer of ``grounding`` and the model that wrote it (budgets, queue, request log
    and metrics as any generation); a question answered without a model is admitted at no cost."""
    meter = Metered(ctx, dep.name)
    if grounding.request is None:
        await state.limiter.admit(principal, ctx, cost_usd=0.0, tokens=0)
        answer = await asyncio.to_thread(
            grounding.answerer.without_model, grounding.question, grounding.sources
        )
        meter.record(answer.usage)
        return dep.name, answer
    run = await GroundedRun.start(state, principal, dep, grounding, meter, timeout_s)
    answer = await run.whole()
    return run.used.name, answer
