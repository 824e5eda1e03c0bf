"""Grounded answers: hybrid retrieval → context packed to the window → an answer that cites [n]."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from typing import Any

from lamina.config import RagSettings
from lamina.data.collection import Collection, Workspace
from lamina.data.filters import parse_filter
from lamina.data.store.base import Where
from lamina.data.types import Hit
from lamina.engine.model import Models
from lamina.models.base import LLM, Model
from lamina.models.prompts import RAG_SYSTEM, render
from lamina.models.types import Generation, GenerationRequest, Message, StreamEvent, Usage
from lamina.rag.assemble import AnswerAssembler, LazyStop, split_stops
from lamina.rag.context import Source, pack
from lamina.rag.types import Answer, Citation
from lamina.telemetry import DATA_SOURCE, OPERATION, tracer

__all__ = ["Answer", "AnswerRun", "Answerer", "Citation", "answer", "ask_directly"]

NOTHING_RELEVANT = "I could not find anything relevant to this question in the collection {name!r}."
# Base models drift into new questions and quote the context's fences; "\n\n" is applied lazily
# (only once the answer has begun), the rest by the engine: see ``split_stops``.
COMPLETION_STOP = ["\n\n", "\nQuestion:", "\nAnswer:", '"""']
ENGINE_STOP, LAZY_STOP = split_stops(COMPLETION_STOP)


class Answerer:
    """One collection + one model; ``ask`` and ``stream`` are one path through an ``AnswerAssembler``."""

    def __init__(
        self,
        collection: Collection,
        model: Model,
        settings: RagSettings,
        k: int | None = None,
        memory_turns: int = 0,
        where: Where | None = None,
    ) -> None:
        self.collection = collection
        self.where = where  # what the asker may read and asked to narrow to (metadata, readers)
        self.model = model
        self.settings = settings
        self.k = k or settings.k
        self.memory_turns = memory_turns  # > 0 for a conversation: earlier turns go into the prompt
        self.history: list[tuple[str, str]] = []

    # prompt --------------------------------------------------------------------------------------
    def _request(self, question: str, sources: list[Source]) -> GenerationRequest:
        history = self.history[-self.memory_turns :] if self.memory_turns else []
        variables = {"question": question, "sources": sources, "instructions": RAG_SYSTEM, "history": history}
        if self.model.is_chat:
            messages: list[Message] = [{"role": "system", "content": render("rag_chat_system", **variables)}]
            for asked, answered in history:
                messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            messages.append({"role": "user", "content": render("rag_chat_user", **variables)})
            return GenerationRequest(messages=messages, max_tokens=self.settings.answer_tokens)
        return GenerationRequest(
            prompt=render("rag_completion", **variables),
            max_tokens=self.settings.answer_tokens,
            stop=ENGINE_STOP,
        )

    @property
    def chooses(self) -> bool:
        """Lamina chooses the answer among the sources' spans; the model is not asked to write one."""
        mode = self.settings.answer_mode
        return mode == "choose" or (mode == "auto" and not self.model.is_chat)

    def prepare(self, question: str) -> tuple[list[Source], GenerationRequest | None]:
        """Retrieve and pack; ``None`` as the request means no model call: nothing relevant was
        found (no sources), or the answer is chosen among the sources (``chooses``)."""
        query = f"{self.history[-1][0]} {question}" if self.memory_turns and self.history else question
        name = self.collection.name
        with tracer.start_as_current_span(
            f"retrieval {name}", attributes={OPERATION: "retrieval", DATA_SOURCE: name}
        ) as span:
            hits = self.collection.search(query, k=self.k, mode="hybrid", where=self.where)
            best = best_similarity(hits)
            span.set_attribute("lamina.retrieval.hits", len(hits))
            span.set_attribute("lamina.retrieval.best_similarity", round(best, 4))
        if best < self.settings.min_similarity:
            return [], None
        with tracer.start_as_current_span("packing") as span:
            frame = self._request(question, [])
            frame_tokens = self.model.count_tokens(frame.text)
            sources = pack(self.model, hits, frame_tokens, self.settings.answer_tokens)
            span.set_attribute("lamina.packing.sources", len(sources))
            span.set_attribute("lamina.packing.budget_tokens", self.settings.answer_tokens)
        return sources, None if self.chooses else self._request(question, sources)

    def assembler(self, question: str, sources: list[Source]) -> AnswerAssembler:
        """What turns this model's raw text into the answer (lazy stops only for completion models)."""
        chat = self.model.is_chat  # chat models stream token by token; base models by sentence
        lazy = [] if chat else LAZY_STOP
        embedder = self.collection.embedder
        return AnswerAssembler(question, sources, embedder, self.settings, lazy, stream_tokens=chat)

    def run(self, question: str, sources: list[Source], request: GenerationRequest) -> AnswerRun:
        """One generation of a prepared request, to be fed the model's text as it arrives."""
        return AnswerRun(self, question, request, self.assembler(question, sources))

    # results -------------------------------------------------------------------------------------
    def nothing_relevant(self) -> Answer:
        return Answer(NOTHING_RELEVANT.format(name=self.collection.name), [], self.model.name, grounded=False)

    def without_model(self, question: str, sources: list[Source]) -> Answer:
        """The answer of a prepared question that needs no model: nothing relevant, or chosen."""
        if not sources:
            return self.nothing_relevant()
        _, answer = self.assembler(question, sources).finish(self.model.name, Usage())
        self.remember(question, answer)
        return answer

    def remember(self, question: str, answer: Answer) -> None:
        """A finished turn goes into the conversation's history (when there is one)."""
        if self.memory_turns:
            self.history.append((question, answer.answer))

    def ask(self, question: str) -> Answer:
        """The answer ``stream`` would give, text included, without showing it piece by piece."""
        return _last(self.stream(question))

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Yields the answer's text pieces as they become final, then the ``Answer`` (same text)."""
        sources, request = self.prepare(question)
        yield from self.respond(question, sources, request)

    def respond(
        self,
        question: str,
        sources: list[Source],
        request: GenerationRequest | None,
        assembler: AnswerAssembler | None = None,
    ) -> Iterator[str | Answer]:
        """Generate for a prepared request; the model is cancelled as soon as the assembler stops."""
        if request is None:
            answer = self.without_model(question, sources)
            yield answer.answer
            yield answer
            return
        if not isinstance(self.model, LLM):
            raise TypeError(f"model {self.model.name} does not generate here: give a lamina.engine model")
        run = AnswerRun(self, question, request, assembler or self.assembler(question, sources))
        events = self.model.stream(request)
        try:
            for event in events:
                generation = event.generation
                usage, finish = (generation.usage, generation.finish_reason) if generation else (None, None)
                if shown := run.feed(event.text, usage=usage, finish_reason=finish):
                    yield shown
                if run.stopped:
                    break
        finally:
            if isinstance(events, Generator):
                events.close()  # stops the engine when the assembler stopped (or our reader went away)
        tail, answer = run.finish(self.model.name)
        if tail:
            yield tail
        yield answer


class AnswerRun:
    """The one loop body that drives the answer assembler, for ``lamina ask`` and the server alike.

    Sans I/O: the caller reads the model (a thread's iterator or an async stream) and feeds each
    piece with what it says of usage and finish; ``stopped`` tells it to cancel the model; ``finish``
    gives the tail and the ``Answer``, with usage counted by the model's tokenizer when the stream
    ended before reporting it (cancelled at a stop, say).
    """

    def __init__(
        self, answerer: Answerer, question: str, request: GenerationRequest, assembler: AnswerAssembler
    ) -> None:
        self.answerer = answerer
        self.question = question
        self.request = request
        self.assembler = assembler
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._consumed: list[str] = []

    @property
    def stopped(self) -> bool:
        return self.assembler.stopped

    def feed(self, text: str | None, *, usage: Usage | None = None, finish_reason: str | None = None) -> str:
        """The answer's text that became final with this piece (possibly "")."""
        if usage is not None and usage.completion_tokens:
            self.usage = usage
        self.finish_reason = finish_reason or self.finish_reason
        if not text:
            return ""
        self._consumed.append(text)
        return self.assembler.feed(text)

    def finish(self, model_name: str) -> tuple[str, Answer]:
        usage = self.usage or estimate_usage(self.answerer.model, self.request, "".join(self._consumed))
        tail, answer = self.assembler.finish(model_name, usage, truncated=self.finish_reason == "length")
        self.answerer.remember(self.question, answer)
        return tail, answer


def _last(parts: Iterator[str | Answer]) -> Answer:
    *_, final = parts
    assert isinstance(final, Answer)
    return final


def best_similarity(hits: list[Hit]) -> float:
    """The gate for "nothing relevant": the best dense similarity among the hits (-1 for none)."""
    return max((h.scores.get("dense", -1.0) for h in hits), default=-1.0)


def estimate_usage(model: Model, request: GenerationRequest, completion: str) -> Usage:
    """Usage of a stream cut short (no final usage arrives): counted with the model's tokenizer."""
    prompt = request.text
    prompt_tokens = model.count_tokens(prompt)
    return Usage(prompt_tokens, max(model.count_tokens(prompt + completion) - prompt_tokens, 0))


def ask_directly(model: LLM, question: str, max_tokens: int) -> Iterator[StreamEvent]:
    """``--no-rag``: the question straight to the model, no retrieval, nothing cited."""
    if model.is_chat:
        request = GenerationRequest(messages=[{"role": "user", "content": question}], max_tokens=max_tokens)
        return model.stream(request)
    prompt = f"Question: {question}\nAnswer:"
    request = GenerationRequest(prompt=prompt, max_tokens=max_tokens, stop=ENGINE_STOP)
    return _lazily_stopped(model, request, LazyStop(LAZY_STOP))


def _lazily_stopped(model: LLM, request: GenerationRequest, stop: LazyStop) -> Iterator[StreamEvent]:
    """The model's stream with leading whitespace dropped and cut at a lazy stop (the engine cancelled)."""
    events = model.stream(request)
    generation: Generation | None = None
    consumed: list[str] = []
    try:
        for event in events:
            generation = event.generation or generation
            if event.text:
                consumed.append(event.text)
                if shown := stop.feed(event.text):
                    yield StreamEvent(text=shown)
                if stop.stopped:
                    break
    finally:
        if isinstance(events, Generator):
            events.close()
    if tail := stop.flush():
        yield StreamEvent(text=tail)
    usage = generation.usage if generation else estimate_usage(model, request, "".join(consumed))
    finish = generation.finish_reason if generation else "stop"
    yield StreamEvent(done=True, generation=Generation(stop.text, model.name, finish, usage))


def answer(
    question: str,
    *,
    collection: str | Collection,
    model: str | LLM | None = None,
    k: int | None = None,
    workspace: Workspace | None = None,
    filter: Mapping[str, Any] | None = None,
) -> Answer:
    """One-call grounded answer: ``answer("How do refunds work?", collection="handbook")``.

    Names are resolved through ``workspace`` (default: the configuration in ``lamina.toml`` and
    ``LAMINA_*``); a local model is loaded once per process and reused by later calls. ``filter``
    keeps the documents whose metadata matches (``{"year": {"$gte": 2024}}``).
    """
    ws = workspace or (collection.workspace if isinstance(collection, Collection) else Workspace())
    coll = collection if isinstance(collection, Collection) else ws.collection(collection)
    llm = model if model is not None and not isinstance(model, str) else _models(ws).get(model)
    where = Where(fields=parse_filter(filter)) if filter else None
    return Answerer(coll, llm, ws.settings.rag, k=k, where=where).ask(question)


_MODELS: dict[int, tuple[object, Models]] = {}


def _models(ws: Workspace) -> Models:
    """One engine (so one loaded model) per settings object; the identity check guards id reuse."""
    entry = _MODELS.get(id(ws.settings))
    if entry is None or entry[0] is not ws.settings:
        entry = _MODELS[id(ws.settings)] = (ws.settings, Models(ws.settings))
    return entry[1]
