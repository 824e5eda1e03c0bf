"""Grounded answers: hybrid retrieval → context packed to the window → an answer that cites [n]."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lamina.config import RagSettings
from lamina.data.collection import Collection, Workspace
from lamina.data.types import Hit
from lamina.models.base import LLM
from lamina.models.prompts import RAG_SYSTEM, render
from lamina.models.registry import ModelRegistry
from lamina.models.types import Generation, GenerationRequest, Message, StreamEvent, Usage
from lamina.rag.citations import attribute, cited_numbers, drop_invalid_markers, drop_repeated_sentences
from lamina.rag.context import Source, pack

NOTHING_RELEVANT = "I could not find anything relevant to this question in the collection {name!r}."
COMPLETION_STOP = ["\n\n", "\nQuestion:", '"""']  # base models drift into new questions


@dataclass
class Citation:
    n: int
    source: str
    title: str
    page: int | None
    headings: list[str]
    chunk_id: str
    snippet: str

    @classmethod
    def of(cls, source: Source) -> Citation:
        h = source.hit
        return cls(source.n, h.source, h.title, h.page, h.headings, h.chunk_id, h.snippet)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage = field(default_factory=Usage)
    grounded: bool = True  # False: nothing relevant was retrieved, or --no-rag
    attributed: bool = False  # True: the model gave no markers and sentences were matched to sources

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "model": self.model,
            "usage": self.usage.to_dict(),
            "grounded": self.grounded,
            "attributed": self.attributed,
        }


class Answerer:
    """One collection + one model; ``ask`` and ``stream`` share every step but generation."""

    def __init__(
        self,
        collection: Collection,
        model: LLM,
        settings: RagSettings,
        k: int | None = None,
        memory_turns: int = 0,
    ) -> None:
        self.collection = collection
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
            messages: list[Message] = [{"role": "system", "content": RAG_SYSTEM}]
            for asked, answered in history:
                messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            messages.append({"role": "user", "content": render("rag_chat_user", **variables)})
            return GenerationRequest(messages=messages, max_tokens=self.settings.answer_tokens)
        return GenerationRequest(
            prompt=render("rag_completion", **variables),
            max_tokens=self.settings.answer_tokens,
            stop=COMPLETION_STOP,
        )

    def prepare(self, question: str) -> tuple[list[Source], GenerationRequest | None]:
        """Retrieve and pack; ``None`` as the request means nothing relevant was found."""
        query = f"{self.history[-1][0]} {question}" if self.memory_turns and self.history else question
        hits = self.collection.search(query, k=self.k, mode="hybrid")
        if _best_similarity(hits) < self.settings.min_similarity:
            return [], None
        frame = self._request(question, [])
        frame_text = frame.prompt or "\n".join(m["content"] for m in frame.messages or [])
        sources = pack(self.model, hits, self.model.count_tokens(frame_text), self.settings.answer_tokens)
        return sources, self._request(question, sources)

    # results -------------------------------------------------------------------------------------
    def finish(self, generation: Generation, sources: list[Source], question: str) -> Answer:
        text = drop_invalid_markers(drop_repeated_sentences(generation.text.strip()), len(sources))
        numbers = [n for n in cited_numbers(text) if 1 <= n <= len(sources)]
        attributed = False
        if not numbers and text:
            text, numbers = attribute(
                text, [s.text for s in sources], self.collection.embedder, self.settings.attribution_threshold
            )
            attributed = bool(numbers)
        by_number = {s.n: s for s in sources}
        if self.memory_turns:
            self.history.append((question, text))
        return Answer(
            answer=text,
            citations=[Citation.of(by_number[n]) for n in sorted(numbers)],
            model=self.model.name,
            usage=generation.usage,
            attributed=attributed,
        )

    def nothing_relevant(self) -> Answer:
        return Answer(NOTHING_RELEVANT.format(name=self.collection.name), [], self.model.name, grounded=False)

    def ask(self, question: str) -> Answer:
        sources, request = self.prepare(question)
        if request is None:
            return self.nothing_relevant()
        return self.finish(self.model.generate(request), sources, question)

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Yields text pieces as they are generated, then the final ``Answer``."""
        sources, request = self.prepare(question)
        if request is None:
            answer = self.nothing_relevant()
            yield answer.answer
            yield answer
            return
        for event in self.model.stream(request):
            if event.done and event.generation is not None:
                yield self.finish(event.generation, sources, question)
            elif event.text:
                yield event.text


def _best_similarity(hits: list[Hit]) -> float:
    return max((h.scores.get("dense", -1.0) for h in hits), default=-1.0)


def ask_directly(model: LLM, question: str, max_tokens: int) -> Iterator[StreamEvent]:
    """``--no-rag``: the question straight to the model, no retrieval, nothing cited."""
    if model.is_chat:
        request = GenerationRequest(messages=[{"role": "user", "content": question}], max_tokens=max_tokens)
    else:
        request = GenerationRequest(
            prompt=f"Question: {question}\nAnswer:", max_tokens=max_tokens, stop=COMPLETION_STOP
        )
    return model.stream(request)


def answer(
    question: str,
    *,
    collection: str | Collection,
    model: str | LLM | None = None,
    k: int | None = None,
    workspace: Workspace | None = None,
) -> Answer:
    """One-call grounded answer: ``answer("How do refunds work?", collection="handbook")``.

    Names are resolved through ``workspace`` (default: the configuration in ``lamina.toml`` and
    ``LAMINA_*``); a local model is loaded once per process and reused by later calls.
    """
    ws = workspace or (collection.workspace if isinstance(collection, Collection) else Workspace())
    coll = collection if isinstance(collection, Collection) else ws.collection(collection)
    llm = model if model is not None and not isinstance(model, str) else _registry(ws).get(model)
    return Answerer(coll, llm, ws.settings.rag, k=k).ask(question)


_REGISTRIES: dict[int, tuple[object, ModelRegistry]] = {}


def _registry(ws: Workspace) -> ModelRegistry:
    """One registry (so one loaded model) per settings object; the identity check guards id reuse."""
    entry = _REGISTRIES.get(id(ws.settings))
    if entry is None or entry[0] is not ws.settings:
        entry = _REGISTRIES[id(ws.settings)] = (ws.settings, ModelRegistry(ws.settings))
    return entry[1]
